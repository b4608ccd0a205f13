"""What the VLM-RM authors' humanoid camera really did, and the humanoid's two looks, as figures for the docs.

    MUJOCO_GL=egl python -m experiments.humanoid_setup [--out docs] [--size 160]

Writes, from what the repo ships (no training, no network):

- ``humanoid_camera.png`` + ``humanoid_camera.json``: an episode of 100 env steps (1.5 s) in which the humanoid
  walks away from the origin to (-2.0, 1.0) m (its root moved kinematically, standing pose: only the camera geometry
  matters here), rendered at steps 0, 33, 66 and 99 by MuJoCo's own renderer three ways: (1) gymnasium's
  ``MujocoRenderer`` exactly as the authors' env drove it (their camera config as ``default_cam_config``,
  ``camera_id=-1``); (2) ``mujoco.Renderer`` with the project's :data:`~vlmrm_jax.envs.humanoid.camera.PAPER_CAMERA`;
  (3) ``mujoco.Renderer`` with :data:`~vlmrm_jax.envs.humanoid.camera.TRACKING_CAMERA`. The JSON has, per view and
  step, where the humanoid is in the image (centre of its segmentation mask, fraction of the image width/height
  from the top left) and its height as a fraction of the image, and the largest pixel difference of (1) and (2).
- ``humanoid_looks.png``: the standing humanoid in the "brax" and the "paper" look, MuJoCo's renderer next to the
  JAX ray caster (the renderer the training loop uses), through the paper's camera.

gymnasium is the authors' rendering library (they pinned 0.28; the camera-id path read the same in 0.28 and 1.x:
``camera_id == -1`` -> ``mjCAMERA_FREE``, config fields copied onto the free camera). It is installed only as a
reference here: ``pip install gymnasium``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported: it picks its GL backend then

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

#: The camera config the authors passed to their humanoid env (their humanoid experiment configs).
AUTHORS_CAMERA_CONFIG = {"trackbodyid": 1, "distance": 3.5, "lookat": np.array([0.0, 0.0, 1.0]),
                         "elevation": -10.0, "azimuth": 180.0}
EPISODE = 100
STEPS = (0, 33, 66, 99)
END_XY = np.array([-2.0, 1.0])  # m: where the root is at the last step


def episode_data(model: mujoco.MjModel) -> list[mujoco.MjData]:
    """MjData at each step of :data:`STEPS`: the standing pose with the root moved linearly from (0, 0) to END_XY."""
    datas = []
    for t in STEPS:
        data = mujoco.MjData(model)
        data.qpos[:] = model.qpos0
        data.qpos[:2] = END_XY * t / (EPISODE - 1)
        mujoco.mj_forward(model, data)
        datas.append(data)
    return datas


def body_mask(renderer: mujoco.Renderer, model: mujoco.MjModel, data, camera) -> np.ndarray:
    """bool [H, W]: pixels showing a geom of a body other than the world (the humanoid)."""
    renderer.enable_segmentation_rendering()
    renderer.update_scene(data, camera)
    seg = renderer.render()
    renderer.disable_segmentation_rendering()
    ids, types = seg[..., 0], seg[..., 1]
    geom = (types == mujoco.mjtObj.mjOBJ_GEOM) & (ids >= 0)
    return geom & (model.geom_bodyid[np.clip(ids, 0, model.ngeom - 1)] != 0)


def placement(mask: np.ndarray) -> dict:
    """Centre of the mask (fractions of width, height from the top left) and its height fraction; None if empty."""
    if not mask.any():
        return {"visible": False}
    rows, cols = np.nonzero(mask)
    h, w = mask.shape
    return {"visible": True, "centre_x": float(cols.mean() / w), "centre_y": float(rows.mean() / h),
            "height": float((rows.max() - rows.min() + 1) / h)}


def camera_figure(out: Path, size: int) -> dict:
    from gymnasium.envs.mujoco.mujoco_rendering import MujocoRenderer

    from vlmrm_jax.envs.humanoid import Humanoid
    from vlmrm_jax.envs.humanoid.camera import PAPER_CAMERA, TRACKING_CAMERA

    model = Humanoid().sys.mj_model
    datas = episode_data(model)
    views = {"gymnasium MujocoRenderer, authors' config, camera_id=-1": None,
             "mujoco.Renderer + PAPER_CAMERA (fixed)": PAPER_CAMERA,
             "mujoco.Renderer + TRACKING_CAMERA (ours)": TRACKING_CAMERA}
    images = {name: [] for name in views}
    report = {"steps": list(STEPS), "root_xy_m": [list(map(float, END_XY * t / (EPISODE - 1))) for t in STEPS],
              "views": {}}
    gym_name = next(iter(views))
    gym_cameras = []
    for data in datas:  # the authors' path first: gymnasium makes its own GL context per renderer
        gym = MujocoRenderer(model, data, default_cam_config=AUTHORS_CAMERA_CONFIG, width=size, height=size,
                             camera_id=-1)
        images[gym_name].append(gym.render("rgb_array").copy())
        cam, copy = gym.viewer.cam, mujoco.MjvCamera()
        copy.type, copy.trackbodyid, copy.fixedcamid = cam.type, cam.trackbodyid, cam.fixedcamid
        copy.lookat[:], copy.distance = cam.lookat, cam.distance
        copy.azimuth, copy.elevation = cam.azimuth, cam.elevation
        report["gymnasium_camera"] = {"type": mujoco.mjtCamera(cam.type).name, "trackbodyid": int(cam.trackbodyid),
                                      "lookat": [float(v) for v in cam.lookat]}
        gym_cameras.append(copy)
        gym.close()
    with mujoco.Renderer(model, size, size) as renderer:
        for name, camera in views.items():
            report["views"][name] = []
            for i, data in enumerate(datas):
                mjv = gym_cameras[i] if camera is None else camera.to_mjv_camera(model, data)
                if camera is not None:
                    renderer.update_scene(data, mjv)
                    images[name].append(renderer.render().copy())
                report["views"][name].append(placement(body_mask(renderer, model, data, mjv)))
    first, second = list(images)[:2]
    report["max_pixel_difference_gymnasium_vs_paper_camera"] = int(max(
        np.abs(a.astype(int) - b.astype(int)).max() for a, b in zip(images[first], images[second])))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(views), len(STEPS), figsize=(2.4 * len(STEPS), 2.6 * len(views)))
    for r, name in enumerate(views):
        for c, t in enumerate(STEPS):
            ax = axes[r, c]
            ax.imshow(images[name][c])
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                x, y = report["root_xy_m"][c]
                ax.set_title(f"step {t}: root at ({x:.1f}, {y:.1f}) m", fontsize=8)
        axes[r, 0].set_ylabel(name.replace(", ", ",\n").replace(" + ", "\n+ "), fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "humanoid_camera.png", dpi=100)
    plt.close(fig)
    (out / "humanoid_camera.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def looks_figure(out: Path, size: int) -> None:
    import jax
    from mujoco import mjx

    from vlmrm_jax.envs.humanoid import Humanoid
    from vlmrm_jax.envs.humanoid.camera import PAPER_CAMERA
    from vlmrm_jax.envs.humanoid.look import LOOKS
    from vlmrm_jax.render import RenderConfig, Renderer

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 * len(LOOKS), figsize=(2.6 * 2 * len(LOOKS), 3.2))
    for i, look in enumerate(LOOKS):
        env = Humanoid(look=look)
        model = env.sys.mj_model
        data = mujoco.MjData(model)
        mujoco.mj_forward(model, data)
        with mujoco.Renderer(model, size, size) as renderer:
            renderer.update_scene(data, PAPER_CAMERA.to_mjv_camera(model, data))
            native = renderer.render().copy()
        jax_renderer = Renderer(model, PAPER_CAMERA, RenderConfig(width=size, height=size))
        ours = np.asarray(jax.jit(jax_renderer.render)(env.sys, mjx.put_data(model, data)))
        for j, (image, who) in enumerate(((native, "MuJoCo renderer"), (ours, "JAX ray caster"))):
            ax = axes[2 * i + j]
            ax.imshow(image)
            ax.set_title(f'look="{look}"\n{who}', fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(out / "humanoid_looks.png", dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.humanoid_setup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--size", type=int, default=160, help="image size in pixels (square)")
    args = parser.parse_args(argv)
    try:
        import gymnasium  # noqa: F401
    except ImportError:
        print("error: gymnasium (the authors' rendering path, the reference) is not installed; pip install gymnasium",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    report = camera_figure(args.out, args.size)
    print(json.dumps(report, indent=2))
    looks_figure(args.out, args.size)
    print(f"wrote {args.out / 'humanoid_camera.png'}, {args.out / 'humanoid_camera.json'}, "
          f"{args.out / 'humanoid_looks.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
