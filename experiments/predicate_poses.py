"""Draw the hand-built humanoid poses and the pose predicates that hold in each, for the README.

    MUJOCO_GL=egl python -m experiments.predicate_poses [--out docs/predicate_poses.png] [--size 240]

Each pose of :data:`vlmrm_jax.envs.humanoid.reference_poses.REFERENCE_POSES` is rendered by MuJoCo's native renderer (headless:
MUJOCO_GL=egl, the default here, or osmesa) from the front-right, and the predicates of
:data:`vlmrm_jax.envs.humanoid.predicates.PREDICATES` that hold in it, evaluated in JAX on the MJX state, are written under it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported: it picks its GL backend then

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from mujoco import mjx  # noqa: E402

from vlmrm_jax.envs.humanoid import Humanoid  # noqa: E402
from vlmrm_jax.envs.humanoid.predicates import evaluate_predicates  # noqa: E402
from vlmrm_jax.envs.humanoid.reference_poses import REFERENCE_POSES, pose_data  # noqa: E402

COLUMNS = 6
LOOKAT_ABOVE_COM = 0.1  # m: the camera looks at a point this far above the centre of mass
CAMERA_DISTANCE = 2.7  # m
CAMERA_AZIMUTH = 150.0  # deg; 180 looks at the humanoid's front
CAMERA_ELEVATION = -12.0  # deg


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.predicate_poses", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/predicate_poses.png"))
    parser.add_argument("--size", type=int, default=240, help="image size in pixels (square)")
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = Humanoid().sys.mj_model
    datas = {name: pose_data(model, pose) for name, pose in REFERENCE_POSES.items()}
    batch = jax.tree.map(lambda *xs: jnp.stack(xs), *[mjx.put_data(model, d) for d in datas.values()])
    holds = {task: np.asarray(values) for task, values in evaluate_predicates(model, batch).items()}

    camera = mujoco.MjvCamera()
    camera.distance, camera.azimuth, camera.elevation = CAMERA_DISTANCE, CAMERA_AZIMUTH, CAMERA_ELEVATION
    rows = -(-len(datas) // COLUMNS)
    fig, axes = plt.subplots(rows, COLUMNS, figsize=(2.3 * COLUMNS, 2.75 * rows))
    try:
        renderer = mujoco.Renderer(model, args.size, args.size)
    except Exception as e:  # noqa: BLE001 - GL set-up errors come as several types
        print(f"error: MuJoCo's renderer failed with MUJOCO_GL={os.environ['MUJOCO_GL']} ({e}); install Debian's "
              f"libegl1 (MUJOCO_GL=egl) or libosmesa6 (MUJOCO_GL=osmesa)", file=sys.stderr)
        return 2
    with renderer:
        for i, (ax, (name, data)) in enumerate(zip(axes.flat, datas.items())):
            camera.lookat[:] = data.subtree_com[0] + (0.0, 0.0, LOOKAT_ABOVE_COM)
            renderer.update_scene(data, camera)
            ax.imshow(renderer.render())
            ax.set_title(name, fontsize=9)
            held = [task for task, values in holds.items() if values[i]]
            ax.set_xlabel("\n".join(held) if held else "(none)", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[len(datas):]:
        ax.axis("off")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
