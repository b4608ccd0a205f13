"""Make the textures of the humanoid's "paper" look (a sky box, floor tiles, a robot skin), procedurally.

    python -m experiments.make_humanoid_textures [--out vlmrm_jax/envs/humanoid/assets]

VLM-RM's textured humanoid (Rocamonde et al. 2023, section 4.4; ../shared/PAPERS.md section 3) used a sky photograph,
a tiles image and a "robot" image whose licences are not stated; these are project-made stand-ins of the same kind,
generated from numbers alone (seeded value noise, no input image), so they are as free as the code (Apache-2.0).
The sizes are those of brax's built-in textures that :func:`vlmrm_jax.envs.humanoid.look.paper_look` replaces in
place: a sky box of six 100 x 100 faces, a 100 x 100 floor tile image (repeated 60 x 60 times over the 40 m floor,
so one image is 0.67 m and one tile 0.33 m) and a cube texture of six 127 x 127 faces for every body geom.

The sky's elevation per texel is read from brax's own gradient sky box (bright up, dark down), so the faces come out
in MuJoCo's orientation without hand-written face conventions. Rerunning writes byte-identical files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ASSETS = Path(__file__).resolve().parents[1] / "vlmrm_jax" / "envs" / "humanoid" / "assets"
SEED = 2023


def value_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a ``cells x cells`` grid of random values, bicubically (smoothstep) interpolated."""
    grid = rng.random((cells + 1, cells + 1))
    ys, xs = np.linspace(0, cells, shape[0], endpoint=False), np.linspace(0, cells, shape[1], endpoint=False)
    y0, x0 = ys.astype(int), xs.astype(int)
    ty, tx = ys - y0, xs - x0
    ty, tx = ty * ty * (3 - 2 * ty), tx * tx * (3 - 2 * tx)
    a, b = grid[y0][:, x0], grid[y0][:, x0 + 1]
    c, d = grid[y0 + 1][:, x0], grid[y0 + 1][:, x0 + 1]
    top = a + (b - a) * tx[None, :]
    bottom = c + (d - c) * tx[None, :]
    return top + (bottom - top) * ty[:, None]


def fractal_noise(rng: np.random.Generator, shape: tuple[int, int], base_cells: int = 3, octaves: int = 4):
    """Sum of value-noise octaves (halving amplitude, doubling frequency), normalised to [0, 1]."""
    total = sum(0.5 ** o * value_noise(rng, shape, base_cells * 2 ** o) for o in range(octaves))
    total -= total.min()
    return total / max(total.max(), 1e-9)


def sky(rng: np.random.Generator, upness: np.ndarray) -> np.ndarray:
    """Six stacked 100 x 100 sky-box faces, float [600, 100, 3]: a blue gradient (pale at the horizon, deeper up)
    with soft white clouds above the horizon. ``upness`` [600, 100] in [0, 1] is 1 straight up, 0 straight down."""
    horizon, zenith, ground = np.array([0.78, 0.86, 0.95]), np.array([0.25, 0.47, 0.82]), np.array([0.55, 0.6, 0.65])
    up = np.clip((upness - 0.5) * 2, 0, 1)[..., None]  # 0 at the horizon, 1 at the zenith
    colour = np.where(upness[..., None] >= 0.5, horizon + (zenith - horizon) * up ** 0.6, ground)
    faces = []
    for face in range(6):
        clouds = fractal_noise(rng, (100, 100), base_cells=3, octaves=4)
        faces.append(np.clip((clouds - 0.55) * 3.0, 0, 1))
    cover = np.concatenate(faces, axis=0)[..., None] * np.clip(up * 4, 0, 1) * 0.85
    return colour * (1 - cover) + np.array([0.97, 0.97, 0.98]) * cover


def tiles(rng: np.random.Generator, size: int = 100, per_side: int = 2, grout: int = 3) -> np.ndarray:
    """Floor tiles, float [size, size, 3]: ``per_side x per_side`` light stone tiles with a slight tint each and
    mottling, separated by dark grout lines (the image tiles seamlessly)."""
    image = np.empty((size, size, 3))
    step = size // per_side
    mottle = fractal_noise(rng, (size, size), base_cells=5, octaves=3)
    for i in range(per_side):
        for j in range(per_side):
            tint = np.array([0.80, 0.76, 0.70]) + rng.uniform(-0.05, 0.05, 3)
            image[i * step:(i + 1) * step, j * step:(j + 1) * step] = tint
    image *= (0.9 + 0.2 * mottle)[..., None]
    lines = (np.arange(size) % step) < grout
    image[lines, :] = [0.33, 0.31, 0.29]
    image[:, lines] = [0.33, 0.31, 0.29]
    return image


def robot(rng: np.random.Generator, size: int = 127, panels: int = 3) -> np.ndarray:
    """A robot skin, six stacked cube faces, float [6 * size, size, 3]: brushed light metal panels with dark seams
    and a rivet near each panel corner."""
    faces = []
    yy, xx = np.mgrid[0:size, 0:size]
    step = size / panels
    for _ in range(6):
        brushed = value_noise(rng, (size, 4), 2).repeat(-(-size // 4), axis=1)[:, :size] * 0.5 + \
            0.5 * rng.random((size, 1))
        face = np.array([0.72, 0.74, 0.78]) * (0.88 + 0.12 * brushed)[..., None]
        seam = (np.minimum(yy % step, xx % step) < 2)
        face[seam] = [0.22, 0.23, 0.26]
        for cy in np.arange(panels) * step + 7:
            for cx in np.arange(panels) * step + 7:
                face[(yy - cy) ** 2 + (xx - cx) ** 2 <= 4] = [0.4, 0.41, 0.44]
        faces.append(face)
    return np.concatenate(faces, axis=0)


def brax_sky_upness() -> np.ndarray:
    """The elevation map of brax's gradient sky box (its luminance, 1 up, 0 down), float [600, 100]."""
    from vlmrm_jax.envs.humanoid import Humanoid

    model = Humanoid(look="brax").sys.mj_model
    tex = next(i for i in range(model.ntex) if model.tex_type[i] == 2)  # mjTEXTURE_SKYBOX
    w, h = int(model.tex_width[tex]), int(model.tex_height[tex])
    data = model.tex_data[model.tex_adr[tex]:model.tex_adr[tex] + w * h * 3].reshape(h, w, 3).astype(np.float64)
    luminance = data.mean(axis=-1)
    return luminance / luminance.max()


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.make_humanoid_textures", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ASSETS)
    args = parser.parse_args(argv)
    import imageio.v3 as iio

    rng = np.random.default_rng(SEED)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, image in (("sky.png", sky(rng, brax_sky_upness())), ("tiles.png", tiles(rng)),
                        ("robot.png", robot(rng))):
        iio.imwrite(args.out / name, to_uint8(image))
        print(f"wrote {args.out / name} ({image.shape[1]} x {image.shape[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
