"""Render example frames of CartPole and MountainCar (flat and textured looks) into one picture for the README.

    python -m experiments.classic_frames [--out docs/classic_frames.png] [--size 224]

Rows: CartPole (flat), MountainCar flat, MountainCar textured; columns: states along the variable that matters
(pole angle, car position), rendered by the JAX renderers at the CLIP input size (square, as the reward sees them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from vlmrm_jax.errors import VlmrmError

CARTPOLE_STATES = [(0.0, 0.0), (-1.2, 0.15), (1.0, -0.5), (0.5, 1.2), (-0.3, np.pi / 2)]  # (x m, theta rad)
MOUNTAIN_CAR_POSITIONS = [-1.2, -0.9, -0.52, 0.0, 0.45]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.classic_frames", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/classic_frames.png"))
    parser.add_argument("--size", type=int, default=224, help="frame size in pixels (square)")
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vlmrm_jax.envs.classic.render import make_cartpole_renderer, make_mountain_car_renderer

    try:
        cartpole = make_cartpole_renderer(args.size, args.size)
        flat = make_mountain_car_renderer(args.size, args.size, look="flat")
        textured = make_mountain_car_renderer(args.size, args.size, look="textured")
    except VlmrmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    x, theta = (jnp.asarray(v, jnp.float32) for v in zip(*CARTPOLE_STATES))
    positions = jnp.asarray(MOUNTAIN_CAR_POSITIONS, jnp.float32)
    rows = [("CartPole", jax.jit(jax.vmap(cartpole))(x, theta),
             [f"x={a:.1f} m, angle={np.degrees(b):.0f} deg" for a, b in CARTPOLE_STATES]),
            ("MountainCar, flat", jax.jit(jax.vmap(flat))(positions),
             [f"position={p:.2f}" for p in MOUNTAIN_CAR_POSITIONS]),
            ("MountainCar, textured", jax.jit(jax.vmap(textured))(positions),
             [f"position={p:.2f}" for p in MOUNTAIN_CAR_POSITIONS])]
    columns = len(rows[0][2])
    fig, axes = plt.subplots(len(rows), columns, figsize=(2.4 * columns, 2.6 * len(rows)))
    for r, (name, frames, titles) in enumerate(rows):
        for c in range(columns):
            ax = axes[r, c]
            ax.imshow(np.asarray(frames[c]))
            ax.set_title(titles[c], fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=10)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
