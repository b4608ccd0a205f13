"""The command line shared by the training experiments (humanoid, cartpole, mountain_car).

Each experiment module declares a :class:`Task` (env, the paper's prompts, episode length, size presets) and calls
:func:`main`; this module parses the flags, fills sizes from the device preset, picks the CLIP, and runs
:func:`vlmrm_jax.pipeline.train_run`. Bad input exits 2 with one ``error: ...`` line.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable

from experiments import run_cli
from vlmrm_jax.errors import VlmrmError

#: PPO flags exposed on every training CLI (``--unroll-length`` -> PPOConfig.unroll_length, ...).
PPO_FLAGS = (("unroll-length", int), ("batch-size", int), ("num-minibatches", int), ("num-updates-per-batch", int),
             ("learning-rate", float), ("entropy-cost", float), ("discounting", float), ("gae-lambda", float),
             ("clipping-epsilon", float), ("reward-scaling", float))


@dataclasses.dataclass(frozen=True)
class Task:
    """What a training experiment trains, with its defaults.

    Attributes:
        env: registered env name (:data:`vlmrm_jax.envs.ENVIRONMENTS`).
        prompt: default goal prompt (the paper's).
        baseline_prompt: default baseline prompt (the paper's).
        episode_length: default env steps per episode (the paper's).
        presets: preset name ("cpu", "accelerator") -> {"total_steps": int, "ppo": PPOConfig fields}.
        description: the ``--help`` text (the experiment's module docstring).
        add_env_arguments: adds env-specific flags to the parser (e.g. MountainCar's ``--look``).
        env_options: parsed arguments -> keyword options of the env.
    """

    env: str
    prompt: str
    baseline_prompt: str
    episode_length: int
    presets: dict[str, dict[str, Any]]
    description: str = ""
    add_env_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    env_options: Callable[[argparse.Namespace], dict[str, Any]] | None = None

    @property
    def prog(self) -> str:
        """The command that runs this experiment."""
        return f"python -m experiments.{self.env}"


def parse_args(task: Task, argv=None) -> argparse.Namespace:
    """Parses the training flags of ``task`` (``--help`` lists them with their defaults)."""
    p = argparse.ArgumentParser(prog=task.prog, description=task.description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompt", action="append", dest="prompts", metavar="TEXT",
                   help=f"goal prompt; repeat for several (their embeddings are averaged). Default: {task.prompt!r}")
    p.add_argument("--baseline-prompt", action="append", dest="baseline_prompts", metavar="TEXT",
                   help=f"baseline prompt; repeatable (default: {task.baseline_prompt!r})")
    p.add_argument("--alpha", type=float, default=0.0,
                   help="goal-baseline regularisation in [0, 1]; 0 = cosine similarity (default 0)")
    p.add_argument("--model", default=None,
                   help="CLIP hub id, local directory, or shipped model name (default: openai/clip-vit-base-patch32 "
                        "if it is in the local Hugging Face cache or reachable, else the shipped offline model)")
    p.add_argument("--preset", choices=["auto", *task.presets], default="auto",
                   help="sizes for the device: auto picks 'cpu' or 'accelerator' from JAX's default backend")
    p.add_argument("--total-steps", type=int, help="env steps to train for (default: from the preset)")
    p.add_argument("--num-envs", type=int, help="parallel environments (default: from the preset)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=f"runs/{task.env}", help="output directory (must be empty unless --resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--image-size", type=int, help="render size in pixels (default: the CLIP's input size)")
    p.add_argument("--no-shadows", action="store_true", help="skip the shadow ray (faster, less realistic)")
    p.add_argument("--episode-length", type=int, default=task.episode_length,
                   help=f"env steps per episode (default {task.episode_length})")
    p.add_argument("--eval-episodes", type=int, default=4, help="episodes rolled out after training")
    p.add_argument("--video-size", type=int, default=224, metavar="PX", help="rollout video frame size (default 224)")
    p.add_argument("--checkpoint-every", type=float, default=300.0, metavar="SECONDS")
    if task.add_env_arguments is not None:
        task.add_env_arguments(p.add_argument_group("environment"))
    ppo = p.add_argument_group("PPO (defaults: from the preset, else brax-like values)")
    for name, typ in PPO_FLAGS:
        ppo.add_argument(f"--{name}", type=typ)
    return p.parse_args(argv)


def make_config(task: Task, args: argparse.Namespace, log: Callable[[str], None] = print):
    """Turns parsed arguments into a validated :class:`vlmrm_jax.pipeline.RunConfig`, filling sizes from the device
    preset and picking the CLIP; logs the choices.

    Raises:
        VlmrmError: on any bad value (the message names it and the fix).
    """
    from vlmrm_jax.pipeline import RunConfig, check_run_dir, choose_model, device_kind

    preset_name = args.preset if args.preset != "auto" else ("cpu" if device_kind() == "cpu" else "accelerator")
    preset = task.presets[preset_name]
    ppo = dict(preset["ppo"], episode_length=args.episode_length)
    for name, _ in PPO_FLAGS:
        field = name.replace("-", "_")
        if getattr(args, field) is not None:
            ppo[field] = getattr(args, field)
    if args.num_envs is not None:
        if args.num_envs <= 0:
            raise VlmrmError(f"--num-envs={args.num_envs} must be a positive integer")
        ppo["num_envs"] = args.num_envs
        if args.batch_size is None:
            ppo["batch_size"] = args.num_envs
    config = RunConfig(
        env=task.env, env_options=task.env_options(args) if task.env_options else {},
        prompts=args.prompts or [task.prompt], baseline_prompts=args.baseline_prompts or [task.baseline_prompt],
        alpha=args.alpha, model="", image_size=args.image_size, shadows=not args.no_shadows,
        total_steps=args.total_steps if args.total_steps is not None else preset["total_steps"], seed=args.seed,
        ppo=ppo, checkpoint_every_s=args.checkpoint_every, eval_episodes=args.eval_episodes,
        video_size=args.video_size)
    check_run_dir(args.out, resume=False)
    model, why = choose_model(args.model, env=task.env)
    config = dataclasses.replace(config, model=model)
    log(f"model: {model} ({why})")
    from vlmrm_jax.models.vocabulary import warn_unknown_prompts

    warn_unknown_prompts(model, config.prompts + config.baseline_prompts, env=config.env, log=log)
    import jax

    devices = f", env batch split over {jax.device_count()} devices" if jax.device_count() > 1 else ""
    log(f"preset: {preset_name} (JAX backend: {device_kind()}{devices}); total_steps={config.total_steps}, "
        f"num_envs={ppo['num_envs']}, unroll_length={ppo['unroll_length']}, "
        f"env steps per PPO iteration={config.ppo_config().env_steps_per_iteration}")
    return config


def main(task: Task, argv=None) -> int:
    """Runs the training CLI of ``task``; returns the exit code (0 done, 2 bad input, 130 interrupted)."""
    args = parse_args(task, argv)
    from vlmrm_jax.pipeline import train_run

    def work():
        config = None if args.resume else make_config(task, args)
        train_run(config, args.out, resume=args.resume)
        print(f"done: metrics, checkpoints, reward curve, policy, video and eval.json are in {args.out}")

    return run_cli(work, resume_command=f"{task.prog} --out {args.out} --resume")
