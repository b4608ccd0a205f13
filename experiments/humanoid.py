"""Train the MJX humanoid with PPO where the only reward is CLIP's judgement of rendered frames (VLM-RM).

    python -m experiments.humanoid --prompt "a humanoid robot kneeling"

Physics (MJX), ray-cast rendering, CLIP preprocessing and embedding, the goal-baseline reward and the PPO update run
inside one jitted program on JAX's default device. Writes config.json, metrics.jsonl, checkpoints/, reward_curve.png,
policy/, rollout.mp4 and eval.json into --out. A killed run continues with --resume.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from vlmrm_jax.envs.humanoid import BASELINE_PROMPT, EPISODE_LENGTH
from vlmrm_jax.errors import VlmrmError

#: Sizes per device kind. "cpu" finishes in about 15 minutes on a 2-core machine with the shipped small CLIP;
#: "accelerator" is paper-like (VLM-RM trained 10M steps with 32 envs; PPO here uses many more parallel envs).
PRESETS = {
    "cpu": dict(total_steps=40_960, ppo=dict(num_envs=16, unroll_length=16, batch_size=16, num_minibatches=4,
                                            num_updates_per_batch=4)),
    "accelerator": dict(total_steps=10_000_000, ppo=dict(num_envs=256, unroll_length=20, batch_size=256,
                                                         num_minibatches=8, num_updates_per_batch=4)),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m experiments.humanoid", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompt", action="append", dest="prompts", metavar="TEXT",
                   help="goal prompt; repeat for several (their embeddings are averaged). "
                        "Default: 'a humanoid robot kneeling'")
    p.add_argument("--baseline-prompt", action="append", dest="baseline_prompts", metavar="TEXT",
                   help=f"baseline prompt; repeatable (default: {BASELINE_PROMPT!r})")
    p.add_argument("--alpha", type=float, default=0.0,
                   help="goal-baseline regularisation in [0, 1]; 0 = cosine similarity (default 0)")
    p.add_argument("--model", default=None,
                   help="CLIP hub id, local directory, or shipped model name (default: openai/clip-vit-base-patch32 "
                        "if it is in the local Hugging Face cache or reachable, else the shipped offline model)")
    p.add_argument("--preset", choices=["auto", *PRESETS], default="auto",
                   help="sizes for the device: auto picks 'cpu' or 'accelerator' from JAX's default backend")
    p.add_argument("--total-steps", type=int, help="env steps to train for (default: from the preset)")
    p.add_argument("--num-envs", type=int, help="parallel environments (default: from the preset)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/humanoid", help="output directory (must be empty unless --resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--image-size", type=int, help="render size in pixels (default: the CLIP's input size)")
    p.add_argument("--no-shadows", action="store_true", help="skip the shadow ray (faster, less realistic)")
    p.add_argument("--episode-length", type=int, default=EPISODE_LENGTH, help="env steps per episode (default 100)")
    p.add_argument("--eval-episodes", type=int, default=4, help="episodes rolled out after training")
    p.add_argument("--checkpoint-every", type=float, default=300.0, metavar="SECONDS")
    ppo = p.add_argument_group("PPO (defaults: from the preset, else brax-like values)")
    for name, typ in [("unroll-length", int), ("batch-size", int), ("num-minibatches", int),
                      ("num-updates-per-batch", int), ("learning-rate", float), ("entropy-cost", float),
                      ("discounting", float), ("gae-lambda", float), ("clipping-epsilon", float),
                      ("reward-scaling", float)]:
        ppo.add_argument(f"--{name}", type=typ)
    return p.parse_args(argv)


def make_config(args: argparse.Namespace, log=print):
    """Turns parsed arguments into a validated RunConfig, filling sizes from the device preset."""
    from vlmrm_jax.pipeline import RunConfig, check_run_dir, choose_model, device_kind

    preset_name = args.preset if args.preset != "auto" else ("cpu" if device_kind() == "cpu" else "accelerator")
    preset = PRESETS[preset_name]
    ppo = dict(preset["ppo"], episode_length=args.episode_length)
    for field in ("unroll_length", "batch_size", "num_minibatches", "num_updates_per_batch", "learning_rate",
                  "entropy_cost", "discounting", "gae_lambda", "clipping_epsilon", "reward_scaling"):
        if getattr(args, field) is not None:
            ppo[field] = getattr(args, field)
    if args.num_envs is not None:
        if args.num_envs <= 0:
            raise VlmrmError(f"--num-envs={args.num_envs} must be a positive integer")
        ppo["num_envs"] = args.num_envs
        if args.batch_size is None:
            ppo["batch_size"] = args.num_envs
    config = RunConfig(
        env="humanoid", prompts=args.prompts or ["a humanoid robot kneeling"],
        baseline_prompts=args.baseline_prompts or [BASELINE_PROMPT], alpha=args.alpha, model="",
        image_size=args.image_size, shadows=not args.no_shadows,
        total_steps=args.total_steps if args.total_steps is not None else preset["total_steps"], seed=args.seed,
        ppo=ppo, checkpoint_every_s=args.checkpoint_every, eval_episodes=args.eval_episodes)
    check_run_dir(args.out, resume=False)
    model, why = choose_model(args.model, env="humanoid")
    config = dataclasses.replace(config, model=model)
    log(f"model: {model} ({why})")
    log(f"preset: {preset_name} (JAX backend: {device_kind()}); total_steps={config.total_steps}, "
        f"num_envs={ppo['num_envs']}, unroll_length={ppo['unroll_length']}, "
        f"env steps per PPO iteration={config.ppo_config().env_steps_per_iteration}")
    return config


def main(argv=None) -> int:
    args = parse_args(argv)
    from vlmrm_jax.pipeline import train_run

    try:
        config = None if args.resume else make_config(args)
        summary = train_run(config, args.out, resume=args.resume)
    except VlmrmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: python -m experiments.humanoid --out {args.out} --resume",
              file=sys.stderr)
        return 130
    print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
