"""Side by side: MuJoCo's native OpenGL render vs the JAX ray caster, same humanoid poses, same (paper) camera.

    python -m experiments.render_compare --out docs/render_side_by_side.png
    python -m experiments.render_compare --env stacking --size 128 --out docs/stacking_render_side_by_side.png

With ``--env stacking``: the block-stacking scene (a random scatter, a cube held, a tower; see
:func:`stacking_scenes`) from both basket cameras, one column per (scene, camera).

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


def _label(image: np.ndarray, text: str, font_size: int = 14):
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, image.shape[1], font_size + 6), fill=(0, 0, 0))
    draw.text((4, 2), text, fill=(255, 255, 255), font=ImageFont.load_default(size=font_size))
    return np.asarray(canvas)


def stacking_scenes(env, seed: int = 0) -> dict:
    """Named block-stacking states (brax ``State``) for rendering comparisons: "scatter" (the env's reset with
    ``seed``), "held" (red lifted by the gripper over a green-on-blue stack) and "tower" (blue, red, green)."""
    import jax
    import jax.numpy as jnp

    from vlmrm_jax.envs.stacking.scene import CUBE_HALF

    h = CUBE_HALF
    stack = jnp.array([[0.0, 0.0, 0.0], [0.05, -0.04, 3 * h], [0.05, -0.04, h]])
    tower = jnp.array([[-0.02, 0.03, 3 * h], [-0.018, 0.035, 5 * h], [-0.02, 0.03, h]])
    return {"scatter": jax.jit(env.reset)(jax.random.PRNGKey(seed)),
            "held": env.state_from_positions(stack, 0, jnp.array([-0.05, 0.04, 0.15])),
            "tower": env.state_from_positions(tower, -1, jnp.array([0.06, -0.06, 0.23]))}


def compare_stacking(size: int, seed: int, shadows: bool) -> tuple[np.ndarray, list[str]]:
    """Renders :func:`stacking_scenes` from both basket cameras both ways; returns the labelled grid
    uint8 [2 * size, 6 * size, 3] (top: MuJoCo, bottom: ours) and summary lines."""
    import jax
    import mujoco
    from mujoco import mjx

    from vlmrm_jax.envs.stacking.camera import CAMERAS
    from vlmrm_jax.envs.stacking.env import Stacking
    from vlmrm_jax.render import FixedCamera, RenderConfig, Renderer, to_uint8

    env = Stacking()
    m = env.mj_model
    top, bottom, lines = [], [], []
    with mujoco.Renderer(m, size, size) as native:
        for camera_name in CAMERAS:
            camera = FixedCamera(camera_name)
            render = jax.jit(Renderer(m, camera, RenderConfig(size, size, shadows=shadows)).render_with_segmentation)
            for kind, state in stacking_scenes(env, seed).items():
                data = mjx.get_data(m, state.pipeline_state)
                mujoco.mj_forward(m, data)
                native.update_scene(data, camera.to_mjv_camera(m, data))
                reference = native.render()
                native.enable_segmentation_rendering()
                native.update_scene(data, camera.to_mjv_camera(m, data))
                reference_ids = native.render()[..., 0]
                native.disable_segmentation_rendering()
                rgb, ids = render(env.sys, state.pipeline_state)
                ours = np.asarray(to_uint8(rgb))
                difference = np.abs(ours.astype(float) - reference).mean() / 255
                agreement = np.mean(np.asarray(ids) == reference_ids)
                label = f"{kind}, {camera_name.removeprefix('basket_')}"
                lines.append(f"{label}: mean |RGB difference| {difference:.3f}, segmentation agreement "
                             f"{agreement:.4f}")
                top.append(_label(reference, f"MuJoCo: {kind}", font_size=10))
                bottom.append(_label(ours, f"JAX: {kind}", font_size=10))
    return np.concatenate([np.concatenate(top, 1), np.concatenate(bottom, 1)], 0), lines


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


def _headless_gl() -> None:
    """Points mujoco.Renderer at MUJOCO_GL's headless backend (egl unless set to osmesa). Setting MUJOCO_GL here
    would be too late: importing :mod:`experiments` already imported mujoco, which picked its GL backend then."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from mujoco.rendering.classic import gl_context

    if os.environ["MUJOCO_GL"].lower() == "osmesa":
        from mujoco.osmesa import GLContext
    else:
        from mujoco.egl import GLContext
    gl_context.GLContext = GLContext


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.render_compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", choices=("humanoid", "stacking"), default="humanoid", help="scene to compare")
    p.add_argument("--out", default=None,
                   help="PNG to write (default docs/render_side_by_side.png, or docs/stacking_render_side_by_side.png)")
    p.add_argument("--size", type=int, default=None, help="image width and height (pixels; default 224, stacking 128)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random poses")
    p.add_argument("--no-shadows", action="store_true", help="render the JAX row without shadow rays")
    args = p.parse_args(argv)
    _headless_gl()
    import imageio.v2 as imageio

    try:
        run = compare_stacking if args.env == "stacking" else compare
        size = args.size or (128 if args.env == "stacking" else 224)
        grid, lines = run(size, args.seed, shadows=not args.no_shadows)
    except VlmrmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.out or ("docs/stacking_render_side_by_side.png" if args.env == "stacking"
                       else "docs/render_side_by_side.png")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    imageio.imwrite(out, grid)
    print("\n".join(lines + [f"wrote {out}"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
