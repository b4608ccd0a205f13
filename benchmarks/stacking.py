"""Throughput of the block-stacking env (``make_env("stacking")``): high-level actions/s and physics substeps/s.

    python -m benchmarks.stacking [--batch-sizes 16 64] [--actions 8] [--size 128] [--repeats 3] [--no-render]

Each program is ``--actions`` high-level actions (random picks and places, uniform in [-1, 1]^2) of a batch of envs
under ``jax.jit(jax.lax.scan(jax.vmap(env.step)))``, compiled ahead of time and timed apart from compiling
(:class:`benchmarks.stages.Timed`); "render" adds both basket cameras at ``--size`` px, shadows on, on every state.
Prints one table row per (batch size, rendering): actions/s (all envs together), physics substeps/s
(actions/s x ``env.SUBSTEPS``), frames/s, compile seconds; ``--json`` also writes them.
"""

from __future__ import annotations

import argparse
import json
import os

import jax
import jax.numpy as jnp

from benchmarks.stages import Timed
from experiments import run_cli


def program(env, num_envs: int, actions: int, frames_fn=None):
    """``(states, key, acc) -> (states, key, acc)``: ``actions`` batched steps with random actions; with
    ``frames_fn`` every new state is also rendered by both cameras (``acc`` sums the pixels so nothing is
    optimised away)."""
    step = jax.vmap(env.step)
    frames = jax.vmap(frames_fn) if frames_fn is not None else None

    def one(carry, _):
        states, key, acc = carry
        key, sub = jax.random.split(key)
        states = step(states, jax.random.uniform(sub, (num_envs, 2), jnp.float32, -1.0, 1.0))
        if frames is not None:
            acc = acc + jnp.mean(frames(states))
        return (states, key, acc), None

    def run(carry):
        return jax.lax.scan(one, carry, None, length=actions)[0]

    return run


def measure(num_envs: int, actions: int, size: int, render: bool, repeats: int) -> dict:
    """Times one configuration; returns its row (see the module docstring)."""
    from vlmrm_jax.envs import make_env
    from vlmrm_jax.envs.stacking.env import SUBSTEPS

    env = make_env("stacking")
    states = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), num_envs))
    frames_fn = env.make_frames_fn(size, size, shadows=True) if render else None
    print(f"compiling batch {num_envs}, render {render} ...", flush=True)
    timed = Timed(f"stacking b{num_envs}", program(env, num_envs, actions, frames_fn),
                  (states, jax.random.PRNGKey(1), jnp.zeros((), jnp.float32)), env_steps=num_envs * actions)
    for _ in range(repeats):
        timed()
    actions_per_s = num_envs * actions / timed.median_s
    return {"num_envs": num_envs, "render": render, "image_size": size if render else None,
            "substeps_per_action": SUBSTEPS, "actions_per_s": actions_per_s,
            "substeps_per_s": actions_per_s * SUBSTEPS, "frames_per_s": 2 * actions_per_s if render else None,
            "compile_s": timed.compile_s, "median_call_s": timed.median_s}


def format_table(rows: list[dict]) -> str:
    """The rows as a fixed-width text table."""
    lines = [f"{'envs':>5} {'render':>12} {'substeps/act':>12} {'actions/s':>10} {'substeps/s':>11} "
             f"{'frames/s':>9} {'compile s':>9}"]
    for r in rows:
        render = f"2 x {r['image_size']} px" if r["render"] else "no"
        frames = f"{r['frames_per_s']:.1f}" if r["frames_per_s"] else "-"
        lines.append(f"{r['num_envs']:>5} {render:>12} {r['substeps_per_action']:>12} {r['actions_per_s']:>10.1f} "
                     f"{r['substeps_per_s']:>11.0f} {frames:>9} {r['compile_s']:>9.1f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.stacking", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64], help="numbers of parallel envs")
    p.add_argument("--actions", type=int, default=8, help="high-level actions per timed call")
    p.add_argument("--size", type=int, default=128, help="rendered image width and height (pixels)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per configuration (median reported)")
    p.add_argument("--no-render", action="store_true", help="time physics only")
    p.add_argument("--render-only", action="store_true", help="time physics + rendering only")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args(argv)

    def work():
        from vlmrm_jax.errors import VlmrmError

        if args.no_render and args.render_only:
            raise VlmrmError("--no-render and --render-only exclude each other; give at most one")
        if min(args.batch_sizes) <= 0 or args.actions <= 0 or args.size <= 0 or args.repeats <= 0:
            raise VlmrmError("--batch-sizes, --actions, --size and --repeats must be positive")
        renders = [False] if args.no_render else [True] if args.render_only else [False, True]
        rows = []
        for render in renders:
            for num_envs in args.batch_sizes:
                rows.append(measure(num_envs, args.actions, args.size, render, args.repeats))
                print(format_table(rows[-1:]).splitlines()[-1], flush=True)
        print(format_table(rows))
        print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, {jax.default_backend()})")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)

    return run_cli(work)


if __name__ == "__main__":
    raise SystemExit(main())
