"""Side by side: MuJoCo's native OpenGL render vs the JAX ray caster, same humanoid poses, same (paper) camera.

    python -m experiments.render_compare --out docs/render_side_by_side.png

Top row: ``mujoco.Renderer`` (MUJOCO_GL=egl by default, or osmesa), with brax's humanoid textures, lights,
shadows and floor reflection. Bottom row: :class:`vlmrm_jax.render.Renderer` with VLM-RM's humanoid camera. Prints
the mean absolute pixel difference and the segmentation agreement per pose.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from vlmrm_jax.errors import VlmrmError

#: Pose names accepted by :func:`humanoid_pose`.
POSES = ("standing", "random joints", "fallen")


def humanoid_pose(mj_model, kind: str, seed: int = 0):
    """A humanoid state (``mujoco.MjData`` after ``mj_forward``) for rendering comparisons.

    Args:
        mj_model: brax's humanoid ``MjModel``.
        kind: "standing" (the initial pose qpos0), "random joints" (every hinge uniform in its range, random yaw)
            or "fallen" (random hinges, lying on its side 0.25 m above the floor).
        seed: NumPy seed for the random joints and yaw.

    Raises:
        VlmrmError: on an unknown kind.
    """
    import mujoco

    if kind not in POSES:
        raise VlmrmError(f"pose {kind!r} is unknown; use one of {list(POSES)}.")
    rng = np.random.default_rng(seed)
    data = mujoco.MjData(mj_model)
    if kind != "standing":
        hinges = np.flatnonzero(mj_model.jnt_type == mujoco.mjtJoint.mjJNT_HINGE)
        low, high = mj_model.jnt_range[hinges].T
        data.qpos[mj_model.jnt_qposadr[hinges]] = rng.uniform(low, high)
        yaw = rng.uniform(-np.pi, np.pi)
        data.qpos[3:7] = [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
        if kind == "fallen":
            quat = np.zeros(4)
            mujoco.mju_mulQuat(quat, data.qpos[3:7].copy(), [np.cos(np.pi / 4), np.sin(np.pi / 4), 0, 0])
            data.qpos[3:7] = quat  # then 90 deg about x: lying on its side
            data.qpos[:3] = [0.3, -0.2, 0.25]
    mujoco.mj_forward(mj_model, data)
    return data


def _label(image: np.ndarray, text: str):
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, image.shape[1], 20), fill=(0, 0, 0))
    draw.text((4, 2), text, fill=(255, 255, 255), font=ImageFont.load_default(size=14))
    return np.asarray(canvas)


def compare(size: int, seed: int, shadows: bool) -> tuple[np.ndarray, list[str]]:
    """Renders every pose both ways; returns the labelled grid uint8 [2 * size, 3 * size, 3] and summary lines."""
    import brax
    import jax
    import mujoco
    from brax.io import mjcf
    from mujoco import mjx

    from vlmrm_jax.envs.humanoid.camera import HUMANOID_CAMERA
    from vlmrm_jax.render import RenderConfig, Renderer, to_uint8

    mj_model = mujoco.MjModel.from_xml_path(os.path.join(os.path.dirname(brax.__file__), "envs/assets/humanoid.xml"))
    sys_ = mjcf.load_model(mj_model)
    renderer = Renderer(mj_model, HUMANOID_CAMERA, RenderConfig(size, size, shadows=shadows))
    render = jax.jit(renderer.render_with_segmentation)
    top, bottom, lines = [], [], []
    with mujoco.Renderer(mj_model, size, size) as native:
        for kind in POSES:
            data = humanoid_pose(mj_model, kind, seed)
            camera = HUMANOID_CAMERA.to_mjv_camera(mj_model, data)
            native.update_scene(data, camera)
            reference = native.render()
            native.enable_segmentation_rendering()
            native.update_scene(data, camera)
            reference_ids = native.render()[..., 0]
            native.disable_segmentation_rendering()
            rgb, ids = render(sys_, mjx.put_data(mj_model, data))
            ours = np.asarray(to_uint8(rgb))
            difference = np.abs(ours.astype(float) - reference).mean() / 255
            agreement = np.mean(np.asarray(ids) == reference_ids)
            lines.append(f"{kind}: mean |RGB difference| {difference:.3f}, segmentation agreement {agreement:.4f}")
            top.append(_label(reference, f"MuJoCo OpenGL: {kind}"))
            bottom.append(_label(ours, f"JAX mjx.ray: {kind}"))
    return np.concatenate([np.concatenate(top, 1), np.concatenate(bottom, 1)], 0), lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.render_compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/render_side_by_side.png", help="PNG to write")
    p.add_argument("--size", type=int, default=224, help="image width and height (pixels)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random poses")
    p.add_argument("--no-shadows", action="store_true", help="render the JAX row without shadow rays")
    args = p.parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is first imported: headless GL for the native renderer
    import imageio.v2 as imageio

    try:
        grid, lines = compare(args.size, args.seed, shadows=not args.no_shadows)
    except VlmrmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    imageio.imwrite(args.out, grid)
    print("\n".join(lines + [f"wrote {args.out}"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
