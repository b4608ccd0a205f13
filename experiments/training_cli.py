"""The command line shared by the training experiments (humanoid, cartpole, mountain_car).

Each experiment module declares a :class:`Task` (env, the paper's prompts, episode length, size presets) and calls
:func:`main`; this module parses the flags, fills sizes from the device preset, picks the CLIP, and runs
:func:`vlmrm_jax.pipeline.train_run`. Bad input exits 2 with one ``error: ...`` line.

``--distributed`` runs one process per host (a TPU pod slice, a SLURM job; ``docs/multi_host.md``): every host runs
the same command, :func:`vlmrm_jax.rl.distributed.initialize` joins them before any JAX computation, and PPO's env
batch is split over all hosts' devices. Importing the classic-control envs already computes with JAX (gymnax builds
arrays at import), and each experiment module imports this module before its env, so the processes are joined
when this module is imported with ``--distributed`` on the command line (:func:`join_if_requested`); :func:`main`
joins them itself when called with the flag in ``argv`` before JAX has started.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, Callable

from experiments import run_cli
from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.rl import distributed
from vlmrm_jax.rl.ppo import PPOConfig

#: The flag that joins the processes of a many-host job.
DISTRIBUTED_FLAG = "--distributed"

#: PPO flags exposed on every training CLI (``--unroll-length`` -> PPOConfig.unroll_length, ...) and their help.
PPO_FLAGS = (("unroll-length", int, "env steps per unroll T (the GAE horizon)"),
             ("batch-size", int, "unrolls per minibatch"),
             ("num-minibatches", int, "minibatches per epoch"),
             ("num-updates-per-batch", int, "epochs over each collected batch"),
             ("learning-rate", float, "Adam step size"),
             ("entropy-cost", float, "weight of the entropy bonus"),
             ("discounting", float, "discount gamma"),
             ("gae-lambda", float, "GAE lambda"),
             ("clipping-epsilon", float, "PPO ratio clip"),
             ("reward-scaling", float, "multiplier of the rewards in the loss"),
             ("action-noise-correlation", float, "correlation rho in [0, 1) of the exploration noise between "
                                                 "successive env steps (0: i.i.d.)"))
#: The PPO flags that also set SAC's field of the same name with ``--learner sac`` (unroll-length: actor steps per
#: iteration there); the others are PPO's alone and refused with SAC.
SAC_SHARED_FLAGS = ("unroll-length", "learning-rate", "discounting", "reward-scaling")


@dataclasses.dataclass(frozen=True)
class Task:
    """What a training experiment trains, with its defaults.

    Attributes:
        env: registered env name (:data:`vlmrm_jax.envs.ENVIRONMENTS`).
        prompt: default goal prompt (the paper's).
        baseline_prompt: default baseline prompt (the paper's).
        episode_length: default env steps per episode (the paper's).
        presets: preset name ("cpu", "accelerator") -> {"total_steps": int, "ppo": PPOConfig fields, and optionally
            "sac": SACConfig fields used with ``--learner sac`` (the SAC flags override them) and "minutes": the
            wall time it promises on a 2-core CPU, warned about when a run will take far longer}.
        description: the ``--help`` text (the experiment's module docstring).
        add_env_arguments: adds env-specific flags to the parser (e.g. MountainCar's ``--look``).
        env_options: parsed arguments -> keyword options of the env, keyed by the dest of the flag that sets each.
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


def build_parser(task: Task) -> argparse.ArgumentParser:
    """The training flags of ``task``; every flag's help states its default. Abbreviated flags are refused, so
    that :func:`given_flags` sees exactly what was typed."""
    from vlmrm_jax.pipeline import RunConfig

    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    ppo_defaults = {f.name: f.default for f in dataclasses.fields(PPOConfig)}
    p = argparse.ArgumentParser(prog=task.prog, description=task.description, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompt", action="append", dest="prompts", metavar="TEXT",
                   help=f"goal prompt; repeat for several (their embeddings are averaged) (default: {task.prompt!r})")
    p.add_argument("--baseline-prompt", action="append", dest="baseline_prompts", metavar="TEXT",
                   help=f"baseline prompt; repeatable (default: {task.baseline_prompt!r})")
    p.add_argument("--alpha", type=float, default=defaults["alpha"],
                   help="goal-baseline regularisation in [0, 1]; 0 = cosine similarity (default: %(default)s)")
    p.add_argument("--model", default=None, metavar="ID|PATH|NAME",
                   help="CLIP hub id, local directory, or shipped model name (default: with the cpu preset the "
                        "env's shipped in-domain model; with the accelerator preset openai/clip-vit-base-patch32 "
                        "if it is in the local Hugging Face cache or reachable, else the shipped model)")
    p.add_argument("--preset", choices=["auto", *task.presets], default="auto",
                   help="sizes for the device; auto picks 'cpu' or 'accelerator' from JAX's default backend "
                        f"(default: %(default)s; {preset_summary(task)})")
    p.add_argument("--total-steps", type=int, metavar="N", help="env steps to train for (default: from the preset); "
                                                                "with --resume a larger value extends the run")
    p.add_argument("--num-envs", type=int, metavar="N", help="parallel environments (default: from the preset)")
    p.add_argument("--seed", type=int, default=defaults["seed"], help="PRNG seed (default: %(default)s)")
    p.add_argument("--out", default=f"runs/{task.env}", metavar="DIR",
                   help="output directory, empty unless --resume (default: %(default)s)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (or from its config when it stopped "
                        "before the first one); flags given with it must match the run, except --total-steps, "
                        "--checkpoint-every, --eval-episodes and --video-size (default: off)")
    p.add_argument("--image-size", type=int, metavar="PX",
                   help="render size in pixels (default: the CLIP's input size, 64 for the shipped models)")
    p.add_argument("--no-shadows", action="store_true",
                   help="skip the shadow ray: faster, less realistic (default: shadows on)")
    p.add_argument("--episode-length", type=int, default=task.episode_length, metavar="N",
                   help="env steps per episode (default: %(default)s)")
    p.add_argument("--eval-episodes", type=int, default=defaults["eval_episodes"], metavar="N",
                   help="episodes rolled out after training for eval.json and the video (default: %(default)s)")
    p.add_argument("--video-size", type=int, default=defaults["video_size"], metavar="PX",
                   help="rollout video frame size in pixels (default: %(default)s)")
    p.add_argument("--checkpoint-every", type=float, default=defaults["checkpoint_every_s"], metavar="SECONDS",
                   help="seconds between checkpoints; one is also written after the first iteration and at the "
                        "end (default: %(default)s)")
    p.add_argument("--learner", choices=["ppo", "sac"], default=defaults["learner"],
                   help="the RL algorithm: PPO, or SAC as VLM-RM trained its humanoid (paper defaults: gamma 0.95, "
                        "lr 6e-4, batch 512; sized by --num-envs and --episode-length; of the flags below it takes "
                        f"{', '.join('--' + f for f in SAC_SHARED_FLAGS)}) (default: %(default)s)")
    p.add_argument(DISTRIBUTED_FLAG, action="store_true",
                   help="one process per host of a TPU pod slice or GPU cluster, the same command on every host and "
                        "--out on a shared file system: join them with jax.distributed (coordinator from "
                        "$JAX_COORDINATOR_ADDRESS, $JAX_NUM_PROCESSES, $JAX_PROCESS_ID, else auto-detected on Cloud "
                        "TPU VMs and under SLURM) and split the env batch over all hosts' devices; --num-envs must be "
                        "a multiple of the device count; PPO only (default: off)")
    if task.add_env_arguments is not None:
        task.add_env_arguments(p.add_argument_group("environment"))
    ppo = p.add_argument_group("PPO (defaults: the preset's values, else PPOConfig's)")
    for name, typ, text in PPO_FLAGS:
        field = name.replace("-", "_")
        ppo.add_argument(f"--{name}", type=typ, help=f"{text} (default: {preset_value(task, field, ppo_defaults)})")
    return p


def preset_summary(task: Task) -> str:
    """``"cpu: 40,960 steps, 16 envs, ~15 min on 2 cores; accelerator: ..."`` for ``--help``."""
    parts = []
    for name, preset in task.presets.items():
        minutes = f", ~{preset['minutes']} min on 2 CPU cores" if preset.get("minutes") else ""
        parts.append(f"{name}: {preset['total_steps']:,} steps, {preset['ppo']['num_envs']} envs{minutes}")
    return "; ".join(parts)


def preset_value(task: Task, field: str, ppo_defaults: dict) -> str:
    """The default of a PPO flag in words: the presets' values where they set it, else PPOConfig's."""
    values = {name: preset["ppo"][field] for name, preset in task.presets.items() if field in preset["ppo"]}
    if not values:
        return f"{ppo_defaults[field]}"
    if len(set(values.values())) == 1 and len(values) == len(task.presets):
        return f"{next(iter(values.values()))}"
    rest = "" if len(values) == len(task.presets) else f", else {ppo_defaults[field]}"
    return ", ".join(f"{v} ({k})" for k, v in values.items()) + rest


def parse_args(task: Task, argv=None) -> argparse.Namespace:
    """Parses the training flags of ``task`` (``--help`` lists them with their defaults); ``args.given`` holds the
    destinations of the flags that were typed."""
    parser = build_parser(task)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.given = given_flags(parser, argv)
    return args


def given_flags(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The ``dest`` of every option typed in ``argv`` (exact option strings; the parser refuses abbreviations)."""
    typed = {token.split("=", 1)[0] for token in argv if token.startswith("--")}
    return {action.dest for action in parser._actions if typed & set(action.option_strings)}


def _preset_name(args: argparse.Namespace) -> str:
    from vlmrm_jax.pipeline import device_kind

    return args.preset if args.preset != "auto" else ("cpu" if device_kind() == "cpu" else "accelerator")


def config_fields(task: Task, args: argparse.Namespace, only_given: bool = False) -> dict[str, Any]:
    """RunConfig fields from the flags (``model`` excluded): all of them for a new run, filled from the device
    preset; with ``only_given`` just those that typed flags set (a ``--preset`` sets its sizes), for a resume.

    Raises:
        VlmrmError: on a non-positive --num-envs, or a bad env option.
    """
    given = args.given if only_given else None
    use = (lambda dest: True) if given is None else (lambda dest: dest in given)  # noqa: E731
    preset_name = _preset_name(args)
    preset = task.presets[preset_name]
    ppo = dict(preset["ppo"]) if use("preset") else {}
    if use("episode_length"):
        ppo["episode_length"] = args.episode_length
    for name, _, _ in PPO_FLAGS:
        field = name.replace("-", "_")
        if getattr(args, field) is not None:
            ppo[field] = getattr(args, field)
    if args.num_envs is not None:
        if args.num_envs <= 0:
            raise VlmrmError(f"--num-envs={args.num_envs} must be a positive integer")
        ppo["num_envs"] = args.num_envs
        if args.batch_size is None:
            ppo["batch_size"] = args.num_envs
    fields: dict[str, Any] = {"ppo": ppo} if ppo else {}
    if use("learner"):
        fields["learner"] = args.learner
    if args.learner == "sac":
        ppo_only = [f"--{name}" for name, _, _ in PPO_FLAGS
                    if name not in SAC_SHARED_FLAGS and getattr(args, name.replace("-", "_")) is not None]
        if ppo_only:
            raise VlmrmError(f"{ppo_only[0]} is a PPO flag; drop it with --learner sac (SAC takes "
                             f"{', '.join('--' + f for f in SAC_SHARED_FLAGS)})")
        sac = dict(preset.get("sac", {})) if use("preset") else {}
        sac.update({name.replace("-", "_"): getattr(args, name.replace("-", "_")) for name in SAC_SHARED_FLAGS
                    if getattr(args, name.replace("-", "_")) is not None})
        fields["sac"] = sac
    if args.total_steps is not None:
        fields["total_steps"] = args.total_steps
    elif use("preset"):
        fields["total_steps"] = preset["total_steps"]
    if use("preset"):
        fields["expected_minutes"] = preset.get("minutes")
    if task.env_options is not None:
        # an env flag's dest is the option's name (MountainCar's --look -> "look")
        options = {k: v for k, v in task.env_options(args).items() if given is None or k in given}
        if options or given is None:
            fields["env_options"] = options
    elif given is None:
        fields["env_options"] = {}
    simple = {"prompts": args.prompts or [task.prompt], "baseline_prompts": args.baseline_prompts or
              [task.baseline_prompt], "alpha": args.alpha, "image_size": args.image_size,
              "shadows": not args.no_shadows, "seed": args.seed, "checkpoint_every_s": args.checkpoint_every,
              "eval_episodes": args.eval_episodes, "video_size": args.video_size}
    dests = {"shadows": "no_shadows", "checkpoint_every_s": "checkpoint_every"}
    for name, value in simple.items():
        if use(dests.get(name, name)):
            fields[name] = value
    return fields


def make_config(task: Task, args: argparse.Namespace, log: Callable[[str], None] = print):
    """Turns parsed arguments into a validated :class:`vlmrm_jax.pipeline.RunConfig` for a new run, filling sizes
    from the device preset and picking the CLIP; logs the choices.

    Raises:
        VlmrmError: on any bad value (the message names it and the fix).
    """
    from vlmrm_jax.pipeline import RunConfig, check_run_dir, choose_model, device_kind

    preset_name = _preset_name(args)
    config = RunConfig(env=task.env, model="", **config_fields(task, args))
    check_run_dir(args.out, resume=False)
    model, why = choose_model(args.model, env=task.env, env_options=config.env_options,
                              prefer_hub=preset_name != "cpu")
    config = dataclasses.replace(config, model=model)
    log(f"model: {model} ({why})")
    from vlmrm_jax.models.vocabulary import warn_unknown_prompts

    warn_unknown_prompts(model, config.prompts + config.baseline_prompts, env=config.env, log=log)
    import jax

    learner = config.learner_config()
    hosts = f" of {jax.process_count()} processes" if jax.process_count() > 1 else ""
    devices = f", env batch split over {jax.device_count()} devices{hosts}" if jax.device_count() > 1 else ""
    log(f"preset: {preset_name} (JAX backend: {device_kind()}{devices}); total_steps={config.total_steps}, "
        f"num_envs={learner.num_envs}, unroll_length={learner.unroll_length}, "
        f"env steps per {config.learner.upper()} iteration={learner.env_steps_per_iteration}")
    return config


def resume_config(task: Task, args: argparse.Namespace, log: Callable[[str], None] = print):
    """The run's own config with the typed flags applied, for ``--resume``; :func:`vlmrm_jax.pipeline.train_run`
    then refuses flags that would change what its checkpoints trained.

    Raises:
        VlmrmError: if ``--out`` holds no run, or a flag's value is invalid.
    """
    from vlmrm_jax.pipeline import RunConfig, check_run_dir

    stored = RunConfig.load(check_run_dir(args.out, resume=True))
    fields = config_fields(task, args, only_given=True)
    if "model" in args.given:
        fields["model"] = args.model
    if "ppo" in fields:
        fields["ppo"] = {**stored.ppo, **fields["ppo"]}
    if "sac" in fields:
        fields["sac"] = {**stored.sac, **fields["sac"]}
    if "env_options" in fields:
        fields["env_options"] = {**stored.env_options, **fields["env_options"]}
    changed = sorted(k for k in fields if k in ("total_steps", "checkpoint_every_s", "eval_episodes", "video_size")
                     and fields[k] != getattr(stored, k))
    if changed:
        log("resume applies " + ", ".join(f"{k}={fields[k]}" for k in changed))
    return dataclasses.replace(stored, **fields)


def join(args: argparse.Namespace) -> None:
    """With ``--distributed``: refuses SAC (one device), then joins this process to the job
    (:func:`vlmrm_jax.rl.distributed.initialize`: arguments from ``$JAX_*`` or cluster auto-detection).

    Raises:
        VlmrmError: ``--learner sac``, or the processes could not be joined (also when it failed on import).
    """
    if not args.distributed:
        return
    if args.learner == "sac":
        raise VlmrmError(f"{DISTRIBUTED_FLAG} trains PPO over many hosts, while --learner sac runs on one device; "
                         f"drop {DISTRIBUTED_FLAG} or --learner sac")
    if _JOIN_ERROR is not None:
        raise _JOIN_ERROR
    distributed.initialize()


def main(task: Task, argv=None) -> int:
    """Runs the training CLI of ``task``; returns the exit code (0 done, 2 bad input, 130 interrupted)."""
    args = parse_args(task, argv)
    from vlmrm_jax.pipeline import train_run

    def work():
        join(args)
        log = distributed.main_process_only(print)
        config = resume_config(task, args, log) if args.resume else make_config(task, args, log)
        if args.distributed and config.learner != "ppo":  # a resumed SAC run
            raise VlmrmError(f"the run in {args.out} trains {config.learner.upper()}, which runs on one device; "
                             f"resume it without {DISTRIBUTED_FLAG}")
        train_run(config, args.out, resume=args.resume)
        log(f"done: metrics, checkpoints, reward curve, policy, video and eval.json are in {args.out}")

    return run_cli(work, resume_command=f"{task.prog} --out {args.out} --resume")


_JOIN_ERROR: VlmrmError | None = None


def join_if_requested(argv: list[str]) -> None:
    """Joins the processes on import when the command line asks for it (``--distributed`` in ``argv``, not
    ``--help`` or ``--learner sac``), before an experiment module's env imports start JAX; an error is kept for
    :func:`join` to report as the CLI's one ``error:`` line."""
    global _JOIN_ERROR
    sac = "--learner=sac" in argv or any(a == "--learner" and b == "sac" for a, b in zip(argv, argv[1:]))
    if DISTRIBUTED_FLAG not in argv or {"-h", "--help"} & set(argv) or sac:
        return
    try:
        distributed.initialize()
    except VlmrmError as e:
        _JOIN_ERROR = e


join_if_requested(sys.argv[1:])
