"""Which reward shapes PPO can learn MountainCar from: the CLIP landscape as a lookup table, and edits of it.

    python -m experiments.mountain_car_reward_shapes --out runs/mc_shapes

A MountainCar frame depends on the car position only, so the CLIP reward of a run is a function of the position:
the swept landscape (``experiments.reward_landscape``'s CSV, default the shipped model's textured one in docs/).
This trains the MountainCar CPU preset's PPO (experiments/mountain_car.py: 32 envs, 307,200 env steps, fresh
resets, 200-step episodes, exploration noise correlated 0.98 between steps) on that function read by linear
interpolation (no rendering, about a minute per shape on a 2-core CPU), and on edits of it, to separate "the reward
has the wrong shape" from "the CLIP pipeline or its noise":

* ``landscape``: the swept CLIP reward as it is;
* ``smoothed``: a moving average over 0.1 world units (the flag's step kept);
* ``right_ramp``: the right slope (valley floor -pi/6 to the flag) replaced by a straight line from the landscape's
  valley value to its value just below the flag; the left hill unchanged;
* ``right_ramp_flat_left``: ``right_ramp`` with the left of the valley floor set to the valley value;
* ``step``: the landscape's valley value everywhere below the flag (no slope at all), its own values at the flag;
* ``linear``: below the flag, a straight line in the position from the landscape's minimum (at the left wall) to its
  value just below the flag (an ideal shaped reward: a positive control).

Success is the true criterion (the car reached the flag, position >= 0.45, during the episode) over ``--eval-envs``
greedy 200-step episodes after training, and the fraction of training episodes that reached it in the last tenth of
training; where the greedy policy keeps the car is the mean position over the second half of those episodes.
``--entropy-cost``, ``--discounting`` and ``--action-noise-correlation`` replace the preset's PPO values (more
exploration, a longer horizon; 0 for brax's i.i.d. noise).
``--learner sac`` trains the VLM-RM authors' MountainCar SAC instead (experiments/mountain_car.py's ``AUTHORS_SAC``,
32 envs; ``--discounting`` replaces its gamma): the paper's learner, which it ran for 3M env steps.
Writes ``shapes.json`` (per shape: the reward table and the success figures) and ``shapes.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from experiments import comma_list, one_of
from vlmrm_jax.envs.classic.captions import VALLEY_POSITION as VALLEY
from vlmrm_jax.envs.classic.render import MOUNTAIN_CAR_GOAL_POSITION as FLAG
from vlmrm_jax.errors import VlmrmError

SHAPES = ("landscape", "smoothed", "right_ramp", "right_ramp_flat_left", "step", "linear")


def read_landscape(path: str | Path, alpha: str = "0") -> tuple[np.ndarray, np.ndarray]:
    """Positions float64 [P] (ascending, world units) and the CLIP reward float64 [P] of a landscape CSV.

    Raises:
        VlmrmError: when the file is missing or has no ``position`` / ``clip_reward_alpha_<alpha>`` column.
    """
    path = Path(path)
    if not path.is_file():
        raise VlmrmError(f"{path} does not exist; write it with python -m experiments.reward_landscape --env "
                         f"mountain_car (or pass the shipped docs/landscape_mountain_car_textured.csv)")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    column = f"clip_reward_alpha_{alpha}"
    if not rows or "position" not in rows[0] or column not in rows[0]:
        raise VlmrmError(f"{path} has no 'position' and {column!r} columns; pass a MountainCar landscape CSV and "
                         f"an --alpha it was swept at")
    x = np.array([float(r["position"]) for r in rows])
    order = np.argsort(x, kind="stable")
    return x[order], np.array([float(r[column]) for r in rows])[order]


def make_shape(name: str, x: np.ndarray, reward: np.ndarray) -> np.ndarray:
    """The reward table float64 [P] of shape ``name`` (see the module docstring) over positions ``x``.

    Raises:
        VlmrmError: on an unknown shape name.
    """
    if name not in SHAPES:
        raise VlmrmError(f"unknown shape {name!r}; choose from {', '.join(SHAPES)}")
    below = x < FLAG
    valley_value = np.interp(VALLEY, x, reward)
    table = reward.copy()
    if name == "smoothed":
        width = max(1, int(round(0.1 / np.median(np.diff(x)))) | 1)
        padded = np.pad(reward, (width // 2, width // 2), mode="edge")
        table = np.where(below, np.convolve(padded, np.ones(width) / width, "valid"), reward)
    elif name.startswith("right_ramp"):
        slope = (x > VALLEY) & below
        top = reward[below][-1]
        table[slope] = valley_value + (top - valley_value) * (x[slope] - VALLEY) / (x[below][-1] - VALLEY)
        if name == "right_ramp_flat_left":
            table[x <= VALLEY] = valley_value
    elif name == "step":
        table[below] = valley_value
    elif name == "linear":
        top = reward[below][-1]
        table[below] = reward.min() + (top - reward.min()) * (x[below] - x[0]) / (x[below][-1] - x[0])
    return table


def learner_config(learner: str = "ppo", overrides: dict | None = None):
    """The learner's settings with ``overrides`` such as ``{"entropy_cost": 0.1}`` replacing some: for ``"ppo"`` a
    PPOConfig of the MountainCar CPU preset, for ``"sac"`` a SACConfig of the authors' MountainCar SAC
    (experiments/mountain_car.py's ``PRESETS`` and ``AUTHORS_SAC``), both with 200-step episodes.

    Raises:
        VlmrmError: on an unknown learner, a field the learner lacks, or an override out of range (the config's
            checks).
    """
    from experiments.mountain_car import AUTHORS_SAC, PRESETS
    from vlmrm_jax.envs.classic import EPISODE_LENGTH
    from vlmrm_jax.rl.ppo import PPOConfig
    from vlmrm_jax.rl.sac import SACConfig

    cls, fields = {"ppo": (PPOConfig, PRESETS["cpu"]["ppo"]), "sac": (SACConfig, dict(AUTHORS_SAC, num_envs=32))}.get(
        learner, (None, None))
    if cls is None:
        raise VlmrmError(f"unknown learner {learner!r}; choose ppo or sac")
    unknown = sorted(set(overrides or {}) - set(cls.__dataclass_fields__))
    if unknown:
        raise VlmrmError(f"{learner} has no setting {unknown[0]!r}; drop it or use the other learner")
    return cls(**{**fields, **(overrides or {})}, episode_length=EPISODE_LENGTH)


def train_on_table(x: np.ndarray, table: np.ndarray, *, seed: int, total_steps: int, eval_envs: int,
                   config=None) -> dict:
    """PPO or SAC with ``config`` (a PPOConfig or SACConfig; default ``learner_config()``, PPO) on
    ``reward = interp(position, x, table)``; success figures.

    Returns:
        ``{"eval_success_rate", "eval_mean_position_second_half", "train_success_rate_last_tenth", "wall_s"}``:
        the fraction of ``eval_envs`` greedy 200-step episodes, and of the training episodes ending in the last tenth
        of the iterations, in which the car reached the flag; the greedy car's mean position (world units) over
        steps 100-199 (where the policy keeps it); wall seconds.
    """
    import jax
    import jax.numpy as jnp
    from brax.envs import training as brax_training
    from brax.envs.base import Wrapper

    from vlmrm_jax.envs.classic import EPISODE_LENGTH
    from vlmrm_jax.envs.classic.env import MountainCar
    from vlmrm_jax.envs.wrappers import STEP_METRICS, FreshResetWrapper
    from vlmrm_jax.rl.ppo import PPO, PPOConfig, make_policy_fn
    from vlmrm_jax.rl.sac import SAC

    xs, values = jnp.asarray(x, jnp.float32), jnp.asarray(table, jnp.float32)

    class LookupReward(Wrapper):
        """Replaces a batched MountainCar's reward by the table's value at the car position; logs ``episode_end``
        (1 on the last step of each episode) and ``success`` (1 there when the flag was reached in the episode)."""

        def reset(self, rng):
            state = self.env.reset(rng)
            zeros = jnp.zeros_like(state.reward)
            return state.replace(info={**state.info, STEP_METRICS: {"episode_end": zeros, "success": zeros}})

        def step(self, state, action):
            state = self.env.step(state, action)
            reward = jnp.interp(state.pipeline_state.position, xs, values)
            ends = (state.info["steps"] >= EPISODE_LENGTH).astype(jnp.float32)
            return state.replace(reward=reward, info={**state.info, STEP_METRICS: {
                "episode_end": ends, "success": state.metrics["success"] * ends}})

    base = MountainCar()
    env = brax_training.VmapWrapper(brax_training.EpisodeWrapper(base, EPISODE_LENGTH, action_repeat=1))
    env = FreshResetWrapper(LookupReward(env), jax.vmap(base.reset))
    config = config or learner_config()
    learner = (PPO if isinstance(config, PPOConfig) else SAC)(env, config)
    start = time.time()
    state = learner.init(jax.random.PRNGKey(seed))
    iterations = max(1, total_steps // config.env_steps_per_iteration)
    successes, ends = [], []
    for _ in range(iterations):
        state, metrics = learner.iteration(state)
        successes.append(float(metrics["env/success"]))
        ends.append(float(metrics["env/episode_end"]))
    policy = make_policy_fn(learner, state, deterministic=True)

    @jax.jit
    def evaluate(key):
        def step(s, _):
            action, _ = policy(s.obs, key)
            s = jax.vmap(base.step)(s, action)
            return s, s.pipeline_state.position
        start_states = jax.vmap(base.reset)(jax.random.split(key, eval_envs))
        final, positions = jax.lax.scan(step, start_states, None, length=EPISODE_LENGTH)
        return jnp.mean(final.metrics["success"]), jnp.mean(positions[EPISODE_LENGTH // 2:])

    # both are means over the rollout's steps; their ratio is the success rate of the episodes that ended
    tenth = max(1, iterations // 10)
    per_episode = float(np.sum(successes[-tenth:]) / max(np.sum(ends[-tenth:]), 1e-9))
    success, position = evaluate(jax.random.PRNGKey(seed + 1))
    return {"eval_success_rate": float(success), "eval_mean_position_second_half": float(position),
            "train_success_rate_last_tenth": per_episode, "wall_s": round(time.time() - start, 1)}


def main(argv=None) -> int:
    """Runs the CLI; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--landscape", default="docs/landscape_mountain_car_textured.csv",
                        help="a MountainCar landscape CSV of experiments.reward_landscape (default: %(default)s)")
    parser.add_argument("--alpha", default="0", help="the landscape column's alpha (default: %(default)s)")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated (default: %(default)s)")
    parser.add_argument("--total-steps", type=int, default=307_200, help="env steps per shape (default: %(default)s)")
    parser.add_argument("--eval-envs", type=int, default=64, help="greedy evaluation episodes (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="PRNG seed of the learner and the evaluation (default: %(default)s)")
    parser.add_argument("--learner", default="ppo", choices=("ppo", "sac"),
                        help="ppo: the cpu preset's; sac: the authors' MountainCar SAC (default: %(default)s)")
    parser.add_argument("--entropy-cost", type=float, default=None,
                        help="PPO entropy cost (default: the cpu preset's, 0.01)")
    parser.add_argument("--discounting", type=float, default=None,
                        help="gamma (default: the cpu preset's 0.99 for PPO, the authors' 0.9999 for SAC)")
    parser.add_argument("--action-noise-correlation", type=float, default=None,
                        help="PPO exploration noise correlated rho between successive steps (PPOConfig; default: "
                             "the cpu preset's)")
    parser.add_argument("--out", required=True, help="output directory for shapes.json and shapes.png")
    args = parser.parse_args(argv)
    try:
        shapes = comma_list(args.shapes, "--shapes", "landscape,step", one_of(SHAPES))
        if args.total_steps <= 0 or args.eval_envs <= 0:
            raise VlmrmError(f"--total-steps {args.total_steps} and --eval-envs {args.eval_envs} must be positive")
        overrides = {k: v for k, v in (("entropy_cost", args.entropy_cost), ("discounting", args.discounting),
                                       ("action_noise_correlation", args.action_noise_correlation))
                     if v is not None}
        config = learner_config(args.learner, overrides)
        x, reward = read_landscape(args.landscape, args.alpha)
    except VlmrmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"landscape": args.landscape, "alpha": args.alpha, "seed": args.seed, "total_steps": args.total_steps,
               "eval_envs": args.eval_envs, "learner": args.learner, "overrides": overrides, "positions": x.tolist(),
               "shapes": {}}
    for name in shapes:
        table = make_shape(name, x, reward)
        print(f"{name}: training {args.learner.upper()} for {args.total_steps} env steps (compiling first)...",
              flush=True)
        figures = train_on_table(x, table, seed=args.seed, total_steps=args.total_steps, eval_envs=args.eval_envs,
                                 config=config)
        print(f"{name}: greedy success {figures['eval_success_rate']:.2f}, training episodes in the last tenth "
              f"{figures['train_success_rate_last_tenth']:.2f}, greedy mean position in the second half of the "
              f"episode {figures['eval_mean_position_second_half']:.2f} ({figures['wall_s']:.0f} s)", flush=True)
        results["shapes"][name] = {"reward": table.tolist(), **figures}
        (out / "shapes.json").write_text(json.dumps(results, indent=1))
    _plot(results, out / "shapes.png")
    print(f"done: shapes.json and shapes.png are in {out}")
    return 0


def _plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, shape in results["shapes"].items():
        ax.plot(results["positions"], shape["reward"],
                label=f"{name}: greedy success {shape['eval_success_rate']:.2f}")
    ax.axvline(FLAG, color="k", ls="--", lw=1)
    ax.set_xlabel("car position (world units); flag at 0.45")
    ax.set_ylabel(f"reward (CLIP, alpha {results['alpha']})")
    ax.set_title(f"PPO on MountainCar, {results['total_steps']:,} env steps per reward shape")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
