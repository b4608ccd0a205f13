"""CLIP scaling sweep: reward quality (and, with --train-steps, PPO success) against CLIP size.

    python -m experiments.scaling_sweep --env humanoid --prompt "a humanoid robot kneeling" \\
        --models humanoid-clip-tiny,runs/vlm/humanoid-clip-small,clip-vit-b-32 --alphas 0,0.5,1 \\
        --data runs/vlm/humanoid-heldout --out runs/scaling

VLM-RM's scaling study (Rocamonde et al. 2023, section 4.4, Fig. 5/6): per CLIP in --models (comma-separated
shipped names, CLIP zoo names such as clip-vit-b-32 ... clip-vit-bigg-14, hub ids or model directories), measure

* its size: parameters (vision + text, and vision alone) and GFLOPs per image embedding (XLA's count);
* its reward quality on held-out labelled frames (--data, else --num-frames generated with --seed), per paper
  prompt of the env's caption set and per alpha: the AUROC of the goal-baseline reward for the prompt's concept,
  and the EPIC distance between the CLIP reward and the ground-truth predicate reward (the frame's 0/1 label);
  the --prompt ones are the sweep's target (the `epic` and `auroc` columns; their rows are marked * in the log);
* with --train-steps N: PPO on the --prompt reward for every seed x alpha of the model as ONE jitted program
  (vlmrm_jax.sweep_pipeline.train_sweep over vlmrm_jax.rl.SweepPPO), then each run's success rate by the
  ground-truth predicates, all runs in one vmapped evaluation.

Writes into --out: scaling.csv and scaling.json (one row per model x alpha [x seed]: model, parameters, GFLOPs per
image, EPIC and AUROC of the prompt, mean EPIC and AUROC over the prompts, per prompt values, success rate) and
scaling.png (quality and success against parameters, log x). One progress line per model. Bad input (unknown
model, empty --models, alphas outside [0, 1], a --data directory that is not a dataset of --env...) exits 2 with one
``error: ...`` line.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from experiments import comma_list, run_cli
from experiments.reward_landscape import parse_alphas
from vlmrm_jax.errors import VlmrmError

DEFAULT_ALPHAS = "0,0.5,1"
OUTPUTS = ("scaling.csv", "scaling.json", "scaling.png")


def parse_args(argv=None) -> argparse.Namespace:
    """Parses the flags (``--help`` lists them)."""
    p = argparse.ArgumentParser(prog="python -m experiments.scaling_sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="humanoid", help="environment with a caption source (default humanoid)")
    p.add_argument("--prompt", action="append", dest="prompts", metavar="TEXT",
                   help="target goal prompt, a caption of the env's caption set; repeat for several (training "
                        "averages their embeddings) (default: the caption set's first paper prompt)")
    p.add_argument("--models", required=True, metavar="A,B,C",
                   help="comma-separated CLIPs: shipped names, zoo names (clip-vit-b-32, clip-vit-l-14, "
                        "clip-vit-h-14, clip-vit-bigg-14), hub ids or model directories")
    p.add_argument("--alphas", default=DEFAULT_ALPHAS, help=f"comma-separated alphas in [0, 1] (default "
                                                            f"{DEFAULT_ALPHAS})")
    p.add_argument("--seeds", default="0", help="comma-separated training seeds, with --train-steps (default 0)")
    p.add_argument("--train-steps", type=int, metavar="N", help="also train PPO for N env steps per run")
    p.add_argument("--data", metavar="DIR", help="held-out dataset of --env (experiments.make_vlm_dataset); "
                                                 "default: generate --num-frames frames with --seed")
    p.add_argument("--num-frames", type=int, default=1500, help="generated held-out frames (default 1500)")
    p.add_argument("--seed", type=int, default=1, help="seed of generated held-out frames (default 1)")
    p.add_argument("--image-size", type=int, metavar="PX",
                   help="size of generated frames (default: the largest input size of the --models)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (scaling.csv/.json/.png)")
    training = p.add_argument_group("training (with --train-steps)")
    training.add_argument("--num-envs", type=int, default=16, help="parallel environments per run (default 16)")
    training.add_argument("--episode-length", type=int, default=None,
                          help="env steps per episode (default: PPOConfig's)")
    training.add_argument("--eval-episodes", type=int, default=4, help="episodes per run for the success rate")
    for flag in ("unroll-length", "batch-size", "num-minibatches"):
        training.add_argument(f"--{flag}", type=int, help="PPO's (default: PPOConfig's)")
    return p.parse_args(argv)


def parse_seeds(text: str) -> list[int]:
    """``"0,1"`` -> [0, 1].

    Raises:
        VlmrmError: on an empty list, a non-integer, a negative or repeated seed.
    """
    seeds = comma_list(text, "--seeds", "0,1,2", int)
    if any(s < 0 or s >= 2 ** 31 for s in seeds):
        raise VlmrmError(f"--seeds {text!r} must be integers in [0, 2**31); pass e.g. --seeds 0,1,2")
    return seeds


def parse_models(text: str) -> list[str]:
    """Splits ``--models`` and checks each name's form (without loading anything).

    Raises:
        VlmrmError: on an empty list, a repeated model, or a name that is no shipped model, zoo name, existing
            directory or hub id (``org/name``).
    """
    from vlmrm_jax.models.registry import CLIP_ZOO, OFFLINE_MODELS

    models = comma_list(text, "--models", "humanoid-clip-tiny,clip-vit-b-32")
    for name in models:
        if name in OFFLINE_MODELS or name in CLIP_ZOO or Path(name).expanduser().is_dir() or "/" in name:
            continue
        raise VlmrmError(f"unknown model {name!r} in --models: not a shipped model ({', '.join(sorted(OFFLINE_MODELS))}"
                         f"), a zoo name ({', '.join(CLIP_ZOO)}), an existing directory or a hub id (org/name); "
                         f"fix the name or pass a model directory")
    return models


def input_sizes(models: list[str]) -> dict[str, int]:
    """Each model's input size from its config.json (weights are not loaded).

    Raises:
        ModelNotFoundError: a model whose config cannot be read (the message names it, the reason and the fix).
    """
    from transformers import CLIPConfig

    from vlmrm_jax.models import CLIP
    from vlmrm_jax.models.registry import OFFLINE_MODELS, resolve_model, resolve_zoo

    sizes = {}
    for name in models:
        source = resolve_zoo(name)
        try:
            where = resolve_model(source) if source in OFFLINE_MODELS else str(Path(source).expanduser()) \
                if Path(source).expanduser().exists() else source
            sizes[name] = int(CLIPConfig.from_pretrained(where).vision_config.image_size)
        except (OSError, ValueError, TypeError, KeyError, VlmrmError):
            CLIP.load(source)  # fails with the loader's one-line reason and fix
            raise
    return sizes


def load_frames(args: argparse.Namespace, image_size: int, log=print):
    """The held-out dataset: --data (checked to be one of --env), else generated into a temporary directory.

    Raises:
        DatasetError: --data is not a dataset, or one of another env.
    """
    from experiments.make_vlm_dataset import generate
    from vlmrm_jax.datasets import load_dataset
    from vlmrm_jax.errors import DatasetError

    if args.data:
        data = load_dataset(args.data)
        if data.env != args.env:
            raise DatasetError(f"--data {args.data} holds {data.env!r} frames, not {args.env!r}; pass a held-out "
                               f"{args.env} dataset (python -m experiments.make_vlm_dataset --env {args.env} --seed 1 "
                               f"--out DIR) or drop --data to generate one")
        return data
    tmp = tempfile.mkdtemp(prefix="scaling_sweep_")
    return generate(args.env, args.num_frames, args.seed, str(Path(tmp) / "data"), image_size=image_size, log=log)


def check_args(args: argparse.Namespace) -> dict:
    """Validates every flag before anything is loaded; returns the parsed values.

    Raises:
        VlmrmError: the first bad flag (one line: the value and the fix).
    """
    from vlmrm_jax.envs import SOURCES

    if args.env not in SOURCES:
        raise VlmrmError(f"unknown environment {args.env!r}; choose one of {', '.join(sorted(SOURCES))}")
    parsed = {"models": parse_models(args.models), "alphas": parse_alphas(args.alphas),
              "seeds": parse_seeds(args.seeds)}
    for name in ("num_frames", "image_size", "train_steps", "num_envs", "episode_length", "eval_episodes",
                 "unroll_length", "batch_size", "num_minibatches"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise VlmrmError(f"--{name.replace('_', '-')}={value} must be a positive integer")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise VlmrmError(f"--out {out} is a file; choose a directory")
    if args.train_steps and (out / "runs").is_dir() and any((out / "runs").iterdir()):
        raise VlmrmError(f"--out {out} already holds the training runs of an earlier sweep ({out / 'runs'}); choose "
                         f"another --out or delete that directory")
    return parsed


def write_table(rows: list[dict], out: Path) -> None:
    """``scaling.csv``: one row per dict, columns in the first row's order."""
    with open(out / "scaling.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})


def train_and_evaluate(clip, name: str, env_name: str, prompts: list[str], baseline_prompt: str,
                       alphas: list[float], seeds: list[int], args: argparse.Namespace, run_dir: Path,
                       log=print) -> list[dict]:
    """PPO on the target reward for every alpha x seed of one loaded CLIP as ONE jitted program, then all runs'
    success rates from one vmapped evaluation (:func:`vlmrm_jax.sweep_pipeline.train_sweep`; its run directory,
    ``sweep.json``, ``metrics.jsonl``, ``checkpoints/``, ``eval.json``, is ``run_dir``).

    Returns:
        One summary per run, alpha-major (see :func:`~vlmrm_jax.sweep_pipeline.evaluate_sweep`): "alpha", "seed",
        "task", "success_rate", "mean_reward", ...

    Raises:
        VlmrmError: bad sizes, or runs that do not split over the devices.
    """
    import jax

    from vlmrm_jax.pipeline import RunConfig
    from vlmrm_jax.sweep_pipeline import train_sweep

    ppo = {"num_envs": args.num_envs, **{k: getattr(args, k) for k in
                                         ("episode_length", "unroll_length", "batch_size", "num_minibatches")
                                         if getattr(args, k) is not None}}
    config = RunConfig(prompts=prompts, baseline_prompts=[baseline_prompt], model=name, env=env_name,
                       total_steps=args.train_steps, seed=0, eval_episodes=args.eval_episodes, ppo=ppo)
    runs = len(alphas) * len(seeds)
    devices = jax.devices()[:math.gcd(runs, jax.device_count())]  # the runs split evenly over these
    return train_sweep(config, alphas, seeds, run_dir, clip=clip, devices=devices, log=log)


def _fmt(x) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def run(args: argparse.Namespace, log=print) -> dict:
    """Everything the CLI does; returns the scaling.json content.

    Raises:
        VlmrmError: on any bad input (the message names it and the fix).
    """
    import numpy as np

    from vlmrm_jax.eval.scaling import model_size, plot_scaling, prompt_concepts, quality_rows, reward_quality
    from vlmrm_jax.models import CLIP
    from vlmrm_jax.models.registry import resolve_zoo, zoo_entry
    from vlmrm_jax.models.vocabulary import warn_unknown_prompts

    parsed = check_args(args)
    models, alphas, seeds = parsed["models"], parsed["alphas"], parsed["seeds"]
    sizes = input_sizes(models)
    data = load_frames(args, args.image_size or max(sizes.values()), log=log)
    captions = data.captions
    prompts = args.prompts or [next(iter(captions.goal_prompts.values()))]
    targets = prompt_concepts(captions, prompts)
    evaluated = {**captions.goal_prompts, **targets}  # the paper's prompts, a --prompt phrasing in its concept's place
    target = next(iter(targets))
    if args.train_steps:
        from vlmrm_jax.envs import make_env

        if make_env(args.env).task_metric(prompts) is None:
            raise VlmrmError(f"--prompt {prompts[0]!r} has no ground-truth success criterion in {args.env}; pass one "
                             f"of the paper's goal prompts to train with --train-steps, or drop --train-steps")
    log(f"{len(models)} models on {len(data)} held-out {args.env} frames ({data.images.shape[1]} px, seed "
        f"{data.manifest['seed']}); target prompt {prompts[0]!r} ({target}), {len(evaluated)} prompts, alphas "
        f"{', '.join(f'{a:g}' for a in alphas)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"env": args.env, "prompts": prompts, "target": target, "highlighted": list(targets),
                     "alphas": alphas, "data": {"path": args.data, "num_frames": len(data),
                                                "seed": int(data.manifest["seed"]),
                                                "image_size": int(data.images.shape[1])},
                     "baseline_prompt": captions.baseline_prompt, "models": {}, "rows": []}
    for i, name in enumerate(models, 1):
        start = time.perf_counter()
        clip = CLIP.load(resolve_zoo(name))
        warn_unknown_prompts(resolve_zoo(name), [*targets.values(), captions.baseline_prompt], env=args.env,
                             log=log)  # the target prompts only: one line per paper prompt would drown the log
        size = model_size(clip)
        quality = reward_quality(clip, data.images, data.labels, captions, alphas, evaluated)
        rows = qrows = quality_rows(name, size, quality, target)
        trained = ""
        if args.train_steps:
            slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name).name)
            results = train_and_evaluate(clip, resolve_zoo(name), args.env, prompts, captions.baseline_prompt,
                                         alphas, seeds, args, out / "runs" / f"{i:02d}-{slug}", log=log)
            by_alpha = {r["alpha"]: r for r in qrows}
            rows = [{**by_alpha[float(r["alpha"])], "seed": int(r["seed"]), "success_rate": r["success_rate"],
                     "eval_reward_mean": r["mean_reward"]} for r in results]
            trained = "; success rate " + ", ".join(
                f"alpha {a:g}: {np.mean([r['success_rate'] for r in results if r['alpha'] == a]):.2f}"
                for a in alphas) + f" ({len(seeds)} seeds, {results[0]['task']})"
        published = zoo_entry(name)
        summary["models"][name] = {"size": size.to_dict(), "quality": quality,
                                   "published": None if published is None else vars(published)}
        summary["rows"] += rows
        per_alpha = "; ".join(f"alpha {r['alpha']:g}: EPIC {_fmt(r['epic'])}, AUROC {_fmt(r['auroc'])} (mean AUROC "
                              f"{_fmt(r['mean_auroc'])})" for r in qrows)
        log(f"[{i}/{len(models)}] {name}: {size.parameters / 1e6:.3g}M parameters ({size.vision_parameters / 1e6:.3g}M "
            f"vision), {size.gflops_per_image:.3g} GFLOPs/image; *{prompts[0]!r}: {per_alpha}{trained} "
            f"[{time.perf_counter() - start:.0f} s]")
        del clip
    rows = summary["rows"]
    write_table(rows, out)
    (out / "scaling.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    plot_scaling(rows, out / "scaling.png", title=f"{args.env}: VLM-RM reward of {prompts[0]!r} against CLIP size "
                                                  f"({len(data)} held-out frames)")
    best = min(rows, key=lambda r: np.inf if math.isnan(r["epic"]) else r["epic"])
    log(f"lowest EPIC: {best['model']} at alpha {best['alpha']:g} ({_fmt(best['epic'])})")
    return summary


def main(argv=None) -> int:
    """Runs the CLI; returns the exit code (0 done, 2 bad input)."""
    args = parse_args(argv)
    code = run_cli(lambda: run(args))
    if code == 0:
        print(f"done: {', '.join(OUTPUTS)} are in {args.out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
