"""The humanoid's looks: brax's MJCF scene, or VLM-RM's textured scene rebuilt with project-made textures.

VLM-RM (Rocamonde et al. 2023, section 4.4) found rendering realism to matter: kneeling success 36% with MuJoCo's
default look, 91% with textures. The authors' textured scene (../shared/PAPERS.md section 3): a sky box from a sky
photograph; a tiled floor (``texrepeat 60 60``) with reflectance, specular and shininess 0; every body geom white
with one cube texture of a "robot" image (``texuniform``, specular 1, shininess 1); one directional light straight
down (diffuse 1, specular 0.5). :func:`paper_look` applies exactly these settings to brax's humanoid, with the
images replaced by the project-made ones in ``assets/`` (made by ``python -m experiments.make_humanoid_textures``,
Apache-2.0 like the code), so the physics is untouched: only textures, materials, colours and the light change.
"""

from __future__ import annotations

import copy
from pathlib import Path

import mujoco
import numpy as np

from vlmrm_jax.errors import VlmrmError

#: The humanoid's looks: "brax" (brax's MJCF: gradient sky, reflective checker floor, brown body) and "paper"
#: (VLM-RM's textured scene, :func:`paper_look`).
LOOKS = ("brax", "paper")
ASSETS = Path(__file__).parent / "assets"
#: Texture name in brax's humanoid.xml (the sky box has none) -> asset file replacing its pixels.
_TEXTURES = {"texplane": "tiles.png", "texgeom": "robot.png"}


def _texture_pixels(mj_model: mujoco.MjModel, tex_id: int, path: Path) -> np.ndarray:
    import imageio.v3 as iio

    if not path.exists():
        raise VlmrmError(f"texture {path} is missing; regenerate it with python -m experiments.make_humanoid_textures")
    image = np.asarray(iio.imread(path))[..., :3]
    want = (int(mj_model.tex_height[tex_id]), int(mj_model.tex_width[tex_id]), 3)
    if image.shape != want or int(mj_model.tex_nchannel[tex_id]) != 3:
        raise VlmrmError(f"texture {path} is {image.shape[1]} x {image.shape[0]} but the model's texture "
                         f"{tex_id} is {want[1]} x {want[0]} RGB; regenerate it with "
                         f"python -m experiments.make_humanoid_textures")
    return image.reshape(-1)


def paper_look(mj_model: mujoco.MjModel) -> mujoco.MjModel:
    """A copy of brax's humanoid ``mj_model`` dressed as VLM-RM's textured humanoid.

    Replaces the pixels of the sky box, the floor texture and the body's cube texture with the assets (same sizes:
    6 x 100 x 100, 100 x 100, 6 x 127 x 127), sets the floor material's reflectance, specular and shininess to 0
    and the body material's specular and shininess to 1, every geom's rgba to white (so textures show unchanged),
    and the light to a directional one straight down (diffuse 1, specular 0.5).

    Raises:
        VlmrmError: if an asset is missing or its size does not fit the model's texture.
    """
    mj_model = copy.deepcopy(mj_model)
    for tex_id in range(mj_model.ntex):
        name = mj_model.texture(tex_id).name
        if mj_model.tex_type[tex_id] == mujoco.mjtTexture.mjTEXTURE_SKYBOX:
            file = "sky.png"
        elif name in _TEXTURES:
            file = _TEXTURES[name]
        else:
            continue
        adr = int(mj_model.tex_adr[tex_id])
        pixels = _texture_pixels(mj_model, tex_id, ASSETS / file)
        mj_model.tex_data[adr:adr + pixels.size] = pixels
    floor, body = mj_model.material("MatPlane").id, mj_model.material("geom").id
    mj_model.mat_reflectance[floor] = 0.0
    mj_model.mat_specular[floor] = mj_model.mat_shininess[floor] = 0.0
    mj_model.mat_specular[body] = mj_model.mat_shininess[body] = 1.0
    mj_model.geom_rgba[:] = 1.0
    mj_model.light_dir[:] = (0.0, 0.0, -1.0)
    mj_model.light_pos[:] = (0.0, 0.0, 1.0)
    mj_model.light_diffuse[:] = 1.0
    mj_model.light_specular[:] = 0.5
    return mj_model
