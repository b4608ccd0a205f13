"""Reward landscape of the CLIP reward on CartPole or MountainCar, and its EPIC distance to the true reward.

    python -m experiments.reward_landscape --env cartpole --out runs/landscape_cartpole
    python -m experiments.reward_landscape --env mountain_car --look flat --alphas 0,0.5,1 --out runs/mc_flat
    python -m experiments.reward_landscape --env cartpole --sweep pole_angle=-1:1:41 --out runs/cp_narrow

VLM-RM's check of the reward's shape (Rocamonde et al. 2023, section 4.2): sweep the state variable that matters
(CartPole: cart position x pole angle; MountainCar: car position; velocities 0), render each state with the env's
renderer, embed it with CLIP once, and score it with the goal-baseline reward for every alpha. Writes into --out
(NAME is --name, default "landscape"):

* NAME.png: the CLIP reward per alpha against the swept variables, with the true reward (rescaled to [0, 1]);
* NAME.csv: one row per grid state: the swept values, the true reward, the CLIP reward per alpha;
* NAME_epic.json: the EPIC distance (Gleave et al. 2020) between the CLIP reward at each alpha and the true reward,
  over the swept grid as coverage distribution (see vlmrm_jax/eval/landscape.py), with the model and settings.

Bad input (unknown env, alphas outside [0, 1], an empty sweep range...) exits 2 with one ``error: ...`` line.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
from pathlib import Path

from experiments import comma_list, run_cli
from vlmrm_jax.errors import VlmrmError

DEFAULT_ALPHAS = "0,0.25,0.5,0.75,1"


def parse_alphas(text: str) -> list[float]:
    """``"0,0.5,1"`` -> [0.0, 0.5, 1.0].

    Raises:
        VlmrmError: on an empty list, a value that is not a number, or one outside [0, 1].
    """
    from vlmrm_jax.rewards import check_alpha

    return comma_list(text, "--alphas", DEFAULT_ALPHAS, check_alpha)


def parse_sweep(specs: list[str], task) -> tuple:
    """Applies ``--sweep NAME=LOW:HIGH[:POINTS]`` overrides to the task's default axes.

    Raises:
        VlmrmError: on an unknown variable, a malformed spec, an empty range or fewer than 2 points.
    """
    from vlmrm_jax.eval.landscape import SweepAxis

    axes = {a.name: a for a in task.axes}
    for spec in specs:
        name, _, values = spec.partition("=")
        if name not in axes:
            raise VlmrmError(f"--sweep {spec!r}: {task.env} sweeps {', '.join(axes)}, not {name!r}; pass "
                             f"NAME=LOW:HIGH[:POINTS]")
        parts = values.split(":")
        try:
            if len(parts) not in (2, 3):
                raise ValueError
            low, high = float(parts[0]), float(parts[1])
            points = int(parts[2]) if len(parts) == 3 else axes[name].points
        except ValueError:
            raise VlmrmError(f"--sweep {spec!r} is not NAME=LOW:HIGH[:POINTS] (e.g. {name}=-1:1:41)") from None
        axes[name] = SweepAxis(name, low, high, points, axes[name].unit)
    return tuple(axes[a.name] for a in task.axes)


def parse_args(argv=None) -> argparse.Namespace:
    """Parses the flags (``--help`` lists them)."""
    p = argparse.ArgumentParser(prog="python -m experiments.reward_landscape", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", required=True, help="cartpole or mountain_car")
    p.add_argument("--look", default=None, help="MountainCar rendering: textured (default) or flat")
    p.add_argument("--model", default=None,
                   help="CLIP hub id, local directory, or shipped model name (default: as the training CLIs: "
                        "openai/clip-vit-base-patch32 if available, else the env's shipped offline model)")
    p.add_argument("--alphas", default=DEFAULT_ALPHAS, help=f"comma-separated alphas in [0, 1] (default "
                                                            f"{DEFAULT_ALPHAS})")
    p.add_argument("--prompt", action="append", dest="prompts", metavar="TEXT",
                   help="goal prompt; repeatable (default: the paper's for the env)")
    p.add_argument("--baseline-prompt", action="append", dest="baseline_prompts", metavar="TEXT",
                   help="baseline prompt; repeatable (default: the paper's for the env)")
    p.add_argument("--sweep", action="append", default=[], metavar="NAME=LOW:HIGH[:POINTS]",
                   help="override a swept variable's range (CartPole: cart_position m, pole_angle rad; MountainCar: "
                        "position); default the full state box")
    p.add_argument("--image-size", type=int, help="render size in pixels (default: the CLIP's input size)")
    p.add_argument("--batch-size", type=int, default=64, help="frames rendered and embedded at once")
    p.add_argument("--seed", type=int, default=0, help="seed of EPIC's coverage samples")
    p.add_argument("--out", required=True, help="output directory (NAME.png, NAME.csv, NAME_epic.json)")
    p.add_argument("--name", default="landscape", help="file name stem of the outputs (default: landscape)")
    return p.parse_args(argv)


def run(args: argparse.Namespace, log=print) -> dict:
    """Computes the landscape and EPIC distances and writes the three files; returns the NAME_epic.json content.

    Raises:
        VlmrmError: on any bad input (the message names it and the fix).
    """
    import jax
    import numpy as np

    from vlmrm_jax.envs import make_env
    from vlmrm_jax.envs import landscape_task
    from vlmrm_jax.eval.landscape import epic_per_alpha, make_landscape_fn, sweep_grid
    from vlmrm_jax.eval.plots import plot_reward_landscape
    from vlmrm_jax.models import CLIP
    from vlmrm_jax.pipeline import choose_model
    from vlmrm_jax.rewards import GoalBaselineReward, check_prompts

    task = landscape_task(args.env)
    if args.look is not None and args.env != "mountain_car":
        raise VlmrmError(f"--look applies to mountain_car only, not {args.env}; drop it")
    env_options = {"look": args.look or "textured"} if args.env == "mountain_car" else {}
    env = make_env(args.env, **env_options)
    alphas = parse_alphas(args.alphas)
    axes = parse_sweep(args.sweep, task)
    prompts = check_prompts(args.prompts or [task.prompt], "goal prompt")
    baseline_prompts = check_prompts(args.baseline_prompts or [task.baseline_prompt], "baseline prompt")
    for name in ("image_size", "batch_size"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise VlmrmError(f"--{name.replace('_', '-')}={value} must be a positive integer")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise VlmrmError(f"--out {out} is a file; choose a directory")
    if not args.name or Path(args.name).name != args.name or args.name.startswith("."):
        raise VlmrmError(f"--name {args.name!r} must be a plain file name stem, e.g. landscape_cartpole")

    model, why = choose_model(args.model, env=args.env)
    log(f"model: {model} ({why})")
    clip = CLIP.load(model)
    goal, baseline = clip.embed_text(prompts), clip.embed_text(baseline_prompts)
    rewards = [GoalBaselineReward.from_embeddings(goal, baseline, alpha) for alpha in alphas]
    size = args.image_size or clip.image_size
    sweep = make_landscape_fn(task, env, env.make_render_fn(size, size),
                              lambda frames: clip.embed_images(clip.params, frames), rewards,
                              batch_size=args.batch_size)
    grid = sweep_grid(axes)
    log(f"sweeping {len(grid)} states ({' x '.join(f'{a.points} {a.name}' for a in axes)}) at {size} px, "
        f"alphas {alphas}")
    clip_rewards, true_rewards = (np.asarray(x) for x in sweep(grid))
    distances = epic_per_alpha(task, env, grid, clip_rewards, jax.random.PRNGKey(args.seed))

    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{args.name}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([a.name for a in axes] + ["true_reward"] + [f"clip_reward_alpha_{a:g}" for a in alphas])
        for i in range(len(grid)):
            writer.writerow([f"{v:.6g}" for v in grid[i]] + [f"{true_rewards[i]:.6g}"]
                            + [f"{r:.8g}" for r in clip_rewards[:, i]])
    look = f" ({env_options['look']})" if env_options else ""
    plot_reward_landscape(axes, grid, true_rewards, clip_rewards, alphas, distances, out / f"{args.name}.png",
                          title=f"{args.env}{look}: CLIP reward ({model}) for '{' / '.join(prompts)}' vs "
                                f"baseline '{' / '.join(baseline_prompts)}'")
    summary = {"env": args.env, "env_options": env_options, "model": model, "prompts": prompts,
               "baseline_prompts": baseline_prompts, "image_size": size,
               "sweep": [dataclasses.asdict(a) for a in axes], "num_states": len(grid), "seed": args.seed,
               "coverage": "uniform over the swept grid (velocities 0), actions uniform in [-1, 1]",
               "epic": {f"{a:g}": float(d) for a, d in zip(alphas, distances)}}
    (out / f"{args.name}_epic.json").write_text(json.dumps(summary, indent=2) + "\n")
    for a, d in zip(alphas, distances):
        log(f"alpha {a:g}: EPIC distance to the true reward {d:.4f}")
    return summary


def main(argv=None) -> int:
    """Runs the CLI; returns the exit code (0 done, 2 bad input)."""
    args = parse_args(argv)
    code = run_cli(lambda: run(args))
    if code == 0:
        print(f"done: {args.name}.png, {args.name}.csv and {args.name}_epic.json are in {args.out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
