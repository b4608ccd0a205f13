"""A VLM-RM run end to end: configuration, assembly of env + renderer + CLIP + reward + PPO, training, evaluation.

The experiment CLIs are thin layers over this module: :class:`RunConfig` says what to run, :func:`build` assembles
the pieces, :func:`train_run` trains with checkpoints and writes the outputs, :func:`evaluate_run` re-renders and
scores a saved policy.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
from brax.envs.base import Env

from vlmrm_jax.envs import make_env
from vlmrm_jax.envs.wrappers import wrap_for_vlm_training
from vlmrm_jax.errors import ModelNotFoundError, VlmrmError
from vlmrm_jax.eval.plots import plot_reward_curve
from vlmrm_jax.eval.rollout import episode_frames, rollout
from vlmrm_jax.eval.video import caption_frames, write_video
from vlmrm_jax.models import CLIP
from vlmrm_jax.render import to_uint8
from vlmrm_jax.rewards import GoalBaselineReward, check_alpha, check_prompts
from vlmrm_jax.rl import (PPO, SAC, PPOConfig, SACConfig, Checkpoints, distributed, make_policy_fn, read_metrics,
                          train, trained_steps)
from vlmrm_jax.rl.checkpoint import save_json_atomic
from vlmrm_jax.rl.trainer import CHECKPOINT_DIR

CONFIG_FILE = "config.json"
#: The learners a run can use (``RunConfig.learner``, ``--learner``).
LEARNERS = ("ppo", "sac")
POLICY_DIR = "policy"


@dataclasses.dataclass
class RunConfig:
    """Everything that defines a VLM-RM training run; saved as ``config.json`` in the run directory.

    Attributes:
        env: environment name (see :func:`vlmrm_jax.envs.make_env`).
        env_options: keyword options of the env (e.g. ``{"look": "flat"}`` for MountainCar).
        prompts: goal prompts (their unit embeddings are averaged into ``g``).
        baseline_prompts: baseline prompts (averaged into ``b``).
        alpha: goal-baseline regularisation strength in [0, 1] (0 = cosine similarity).
        model: CLIP hub id, local directory or shipped model name, as resolved at start.
        image_size: render size in pixels (square); None = the CLIP's input size.
        shadows: ray-traced shadows in the rendering.
        total_steps: env steps to train for.
        seed: PRNG seed.
        ppo: PPO hyper-parameters (:class:`vlmrm_jax.rl.PPOConfig` fields); its ``num_envs`` and
            ``episode_length`` also size a SAC run.
        learner: "ppo" or "sac" (VLM-RM's humanoid learner; :class:`vlmrm_jax.rl.SAC`).
        sac: SAC hyper-parameters (:class:`vlmrm_jax.rl.SACConfig` fields) over the paper's defaults, used with
            ``learner="sac"``.
        checkpoint_every_s: seconds between checkpoints (one is also written after the first iteration and at the
            end).
        eval_episodes: episodes rolled out after training for the success rate and video.
        video_size: side of the rollout video's frames in pixels (rendered apart from the CLIP's frames).
        expected_minutes: the wall time the chosen size preset promises, in minutes, or None; a warning is printed
            when the ETA measured after the first iteration is more than :data:`SLOW_FACTOR` times longer.
    """

    prompts: list[str]
    baseline_prompts: list[str]
    model: str
    env: str = "humanoid"
    env_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    alpha: float = 0.0
    image_size: int | None = None
    shadows: bool = True
    total_steps: int = 100_000
    seed: int = 0
    ppo: dict[str, Any] = dataclasses.field(default_factory=dict)
    checkpoint_every_s: float = 300.0
    eval_episodes: int = 4
    video_size: int = 224
    expected_minutes: float | None = None
    learner: str = "ppo"
    sac: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.prompts = check_prompts(self.prompts, "goal prompt")
        self.baseline_prompts = check_prompts(self.baseline_prompts, "baseline prompt")
        self.alpha = check_alpha(self.alpha)
        for name in ("total_steps", "eval_episodes", "video_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise VlmrmError(f"{name.replace('_', '-')}={getattr(self, name)!r} must be a positive integer")
        if self.image_size is not None and self.image_size <= 0:
            raise VlmrmError(f"image-size={self.image_size!r} must be a positive number of pixels")
        if self.learner not in LEARNERS:
            raise VlmrmError(f"learner={self.learner!r} is not a learner; choose one of {', '.join(LEARNERS)}")
        self.learner_config()  # validates

    def ppo_config(self) -> PPOConfig:
        """The PPO hyper-parameters as a :class:`PPOConfig` (validated)."""
        fields = dict(self.ppo)
        for key in ("policy_hidden_layer_sizes", "value_hidden_layer_sizes"):
            if key in fields:
                fields[key] = tuple(fields[key])
        return PPOConfig(**fields)

    def learner_config(self) -> PPOConfig | SACConfig:
        """The hyper-parameters of the run's learner (validated): :meth:`ppo_config`, or for SAC a
        :class:`SACConfig` with the PPO config's ``num_envs`` and ``episode_length`` and the ``sac`` fields."""
        ppo = self.ppo_config()
        if self.learner == "ppo":
            return ppo
        fields = {"num_envs": ppo.num_envs, "episode_length": ppo.episode_length, **self.sac}
        if "hidden_layer_sizes" in fields:
            fields["hidden_layer_sizes"] = tuple(fields["hidden_layer_sizes"])
        return SACConfig(**fields)

    def save(self, run_dir: Path) -> None:
        """Writes ``run_dir/config.json`` atomically."""
        save_json_atomic(Path(run_dir) / CONFIG_FILE, dataclasses.asdict(self))

    @classmethod
    def load(cls, run_dir: str | Path) -> "RunConfig":
        """Reads ``run_dir/config.json``.

        Raises:
            VlmrmError: if the file is missing or unreadable.
        """
        path = Path(run_dir) / CONFIG_FILE
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise VlmrmError(f"{path} does not exist; pass the --out directory of a training run") from None
        except (json.JSONDecodeError, TypeError) as e:
            raise VlmrmError(f"{path} is not a valid run config ({e}); pass the --out directory of a "
                             f"training run") from None


class VLMPPO(PPO):
    """:class:`~vlmrm_jax.rl.PPO` whose reward model weights are an argument of the jitted ``init`` and ``iteration``.

    Arrays that a jitted function closes over become constants of the compiled program (~350 MB for a ViT-B/32
    vision tower), which XLA copies and folds while compiling; passed as arguments they are only buffers. The env is
    therefore rebuilt around the traced weights inside each traced function (cheap Python), while the interface
    stays PPO's: ``init(rng)``, ``iteration(state)``.

    Args:
        make_env: ``weights -> batched training env`` whose reward embeds frames with those weights (e.g. the
            :func:`~vlmrm_jax.envs.wrappers.wrap_for_vlm_training` stack with ``partial(clip.embed_images,
            weights)``).
        weights: the reward model's weights pytree (e.g. ``clip.params``), replicated over ``devices``.
        config, devices: as for :class:`~vlmrm_jax.rl.PPO`.

    Raises:
        VlmrmError: as :class:`~vlmrm_jax.rl.PPO`.
    """

    def __init__(self, make_env: Callable[[Any], Env], weights: Any, config: PPOConfig,
                 devices: list[jax.Device] | None = None):
        super().__init__(make_env(weights), config, devices)
        if self.mesh is not None:
            weights = distributed.replicate(weights, self.mesh)  # on the devices of every process
        _jit_with_weights(self, make_env, weights)


class VLMSAC(SAC):
    """:class:`~vlmrm_jax.rl.SAC` whose reward model weights are an argument of the jitted ``init`` and
    ``iteration``, for the reason given in :class:`VLMPPO`. Args as for :class:`VLMPPO` (one device)."""

    def __init__(self, make_env: Callable[[Any], Env], weights: Any, config: SACConfig):
        super().__init__(make_env(weights), config)
        _jit_with_weights(self, make_env, weights)


def _jit_with_weights(learner: PPO | SAC, make_env: Callable[[Any], Env], weights: Any) -> None:
    """Sets ``learner.init(rng)`` / ``learner.iteration(state)`` to jitted functions of (weights, ...) with the env
    rebuilt around the traced weights (``make_env(weights)``), and ``learner.weights``."""
    learner.weights = weights

    def with_env(weights):
        traced = copy.copy(learner)
        traced.env = make_env(weights)
        return traced

    learner.init = functools.partial(jax.jit(lambda w, rng: with_env(w)._init(rng)), weights)
    learner.iteration = functools.partial(jax.jit(lambda w, state: with_env(w)._iteration(state),
                                                  donate_argnums=1), weights)


@dataclasses.dataclass
class Pipeline:
    """The assembled pieces of a run (see :func:`build`).

    Attributes:
        config: the run's configuration.
        env: the unbatched env (a :class:`~vlmrm_jax.envs.base.VLMEnv`).
        clip: the loaded CLIP; frames are embedded with ``clip.embed_images(weights, images)``.
        reward: the goal-baseline reward of the run's prompts.
        render_fn: renders ONE state at the CLIP's frame size: ``State -> float32 [S, S, 3]``.
        metrics_fn: the env's ground-truth per-step values, ``State -> {name: float32 []}``.
        ppo: the learner on the VLM-rewarded training env (:class:`VLMPPO`, or :class:`VLMSAC` with
            ``learner="sac"``).
    """

    config: RunConfig
    env: Any
    clip: CLIP
    reward: GoalBaselineReward
    render_fn: Callable
    metrics_fn: Callable | None
    ppo: VLMPPO | VLMSAC


def build(config: RunConfig) -> Pipeline:
    """Loads the CLIP, embeds the prompts once, and assembles env, renderer, reward and PPO.

    The CLIP's weights are an argument of the jitted PPO functions (:class:`VLMPPO`), not constants in them.

    Raises:
        VlmrmError: on an unknown env or model, or bad sizes.
    """
    env = make_env(config.env, **config.env_options)
    clip = CLIP.load(config.model)
    reward = GoalBaselineReward.from_embeddings(clip.embed_text(config.prompts),
                                                clip.embed_text(config.baseline_prompts), config.alpha)
    size = config.image_size or clip.image_size
    render_fn = env.make_render_fn(size, size, shadows=config.shadows)
    metrics_fn = env.step_metrics_fn()
    learner_config = config.learner_config()
    make_train_env = training_env_factory(env, clip, render_fn, metrics_fn, learner_config.episode_length)
    learner = (VLMSAC if config.learner == "sac" else VLMPPO)(lambda weights: make_train_env(weights, reward),
                                                               clip.params, learner_config)
    return Pipeline(config, env, clip, reward, render_fn, metrics_fn, learner)


def training_env_factory(env: Any, clip: CLIP, render_fn: Callable, metrics_fn: Callable | None,
                         episode_length: int) -> Callable[[Any, GoalBaselineReward], Env]:
    """``(weights, reward) -> batched training env``: the :func:`~vlmrm_jax.envs.wrappers.wrap_for_vlm_training`
    stack of ``env`` whose reward embeds ``render_fn``'s frames with ``clip`` at ``weights`` and scores them with
    ``reward``; called inside traced functions with traced weights (:class:`VLMPPO`) and rewards (a sweep)."""
    def make_train_env(weights, reward: GoalBaselineReward) -> Env:
        return wrap_for_vlm_training(env, episode_length=episode_length, render_fn=render_fn,
                                     embed_fn=functools.partial(clip.embed_images, weights), reward=reward,
                                     metrics_fn=metrics_fn)

    return make_train_env


def check_run_dir(out: str | Path, resume: bool) -> Path:
    """Checks, without changing anything, that ``out`` can hold a new run (or holds one to resume).

    Raises:
        VlmrmError: ``out`` is a file or not writable; it is non-empty without ``resume``; or ``resume`` and it holds
            no run.
    """
    out = Path(out)
    if resume:
        if not (out / CONFIG_FILE).exists():
            raise VlmrmError(f"--resume given but {out} holds no run ({CONFIG_FILE} missing); drop --resume to "
                             f"start a new run there")
        return out
    if out.exists() and not out.is_dir():
        raise VlmrmError(f"--out {out} is a file; choose a directory")
    if out.exists() and any(out.iterdir()):
        raise VlmrmError(f"--out {out} is not empty; pass --resume to continue the run in it, or choose a new "
                         f"directory")
    parent = next(p for p in [out, *out.absolute().parents] if p.exists())
    if not os.access(parent, os.W_OK | os.X_OK):
        raise VlmrmError(f"--out {out} is not writable ({parent} denies writing); choose a directory you can "
                         f"write to")
    return out


def prepare_run_dir(out: str | Path, resume: bool) -> Path:
    """:func:`check_run_dir`, then creates ``out``. With several processes (:mod:`vlmrm_jax.rl.distributed`) every
    process checks before any creates, so that process 0's first file does not make ``out`` non-empty for the
    others' checks."""
    out = check_run_dir(out, resume)
    distributed.sync("vlmrm_jax.pipeline.prepare_run_dir")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VlmrmError(f"--out {out} cannot be created ({e.strerror}); choose a directory you can write to") from None
    return out


#: RunConfig fields that a resumed run may change: they do not alter what its checkpoints have trained.
RESUMABLE_FIELDS = ("total_steps", "checkpoint_every_s", "eval_episodes", "video_size", "expected_minutes")
#: The command-line flag of a RunConfig field, where its name differs (for one-line errors).
_FLAGS = {"prompts": "--prompt", "baseline_prompts": "--baseline-prompt", "shadows": "--no-shadows",
          "checkpoint_every_s": "--checkpoint-every"}


def _flag(name: str) -> str:
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def check_resume(stored: RunConfig, config: RunConfig, trained_steps: int | None, out: Path) -> None:
    """Checks that ``config`` continues the run ``stored`` (the run's own ``config.json``): only the
    :data:`RESUMABLE_FIELDS` may differ, and ``total_steps`` may not fall below the env steps already trained.

    Raises:
        VlmrmError: naming the first field that differs (as its flag), the stored value and the fix.
    """
    def differs(name, new, old):
        return VlmrmError(f"{_flag(name)} {new!r} differs from the run in {out}, trained with {old!r}; a resumed "
                          f"run can change only {', '.join(_flag(f) for f in RESUMABLE_FIELDS[:-1])}: drop the "
                          f"flag, or start a new run in another --out")

    new_ppo, old_ppo = dataclasses.asdict(config.ppo_config()), dataclasses.asdict(stored.ppo_config())
    for key in new_ppo:
        if new_ppo[key] != old_ppo[key]:
            raise differs(key, new_ppo[key], old_ppo[key])
    for field in dataclasses.fields(RunConfig):
        new, old = getattr(config, field.name), getattr(stored, field.name)
        if field.name == "env_options":
            for key in sorted(set(new) | set(old)):
                if new.get(key) != old.get(key):
                    raise differs(key, new.get(key), old.get(key))
        elif field.name not in RESUMABLE_FIELDS + ("ppo",) and new != old:
            raise differs(field.name, new, old)
    if trained_steps is not None and config.total_steps < trained_steps:
        raise VlmrmError(f"--total-steps {config.total_steps} is below the {trained_steps} env steps the run in "
                         f"{out} has trained; pass a larger value to extend it, or drop --total-steps")


def train_run(config: RunConfig | None, out: str | Path, *, resume: bool = False, show_progress: bool = True,
              log: Callable[[str], None] = print) -> dict:
    """Trains a run and writes everything into ``out``.

    Writes ``config.json``, ``metrics.jsonl`` (one line per PPO iteration), ``checkpoints/`` (orbax, atomic),
    ``reward_curve.png``, ``policy/`` (the final policy's parameters), ``rollout.mp4`` (an episode of the trained
    policy with the per-frame VLM reward drawn on it) and ``eval.json`` (see :func:`evaluate_run`).

    With several processes (:mod:`vlmrm_jax.rl.distributed`: one per host, the same call on each, ``out`` on a
    file system they share) PPO's env batch is split over all processes' devices; process 0 alone writes the plain
    files and logs, every process takes part in the orbax saves (``checkpoints/``, ``policy/``), and every process
    returns the same summary. SAC runs on one device and so in one process only.

    Args:
        config: what to run. With ``resume``: None continues the run's own ``config.json``; a config may change
            its :data:`RESUMABLE_FIELDS` (e.g. a larger ``total_steps`` extends the run) and must equal it
            otherwise (:func:`check_resume`).
        out: the run directory.
        resume: continue the run in ``out`` from its latest checkpoint, or from its config when it was killed
            before the first checkpoint.

    Returns:
        The evaluation summary (as in ``eval.json``). A finished run resumed with its own config is not evaluated
        again: its ``eval.json`` (of the same env step) is returned as it is.

    Raises:
        VlmrmError: bad input (see :func:`prepare_run_dir`, :func:`build`, :func:`check_resume`), a corrupt
            checkpoint, NaN in training, or SAC with several processes.
    """
    log = distributed.main_process_only(log)
    if distributed.is_multi_process() and config is not None and config.learner != "ppo":
        raise VlmrmError(f"learner={config.learner!r} runs on one device, not over {jax.process_count()} "
                         f"processes; use learner 'ppo' or run a single process")
    out = prepare_run_dir(out, resume)
    if resume:
        stored = RunConfig.load(out)
        trained = trained_steps(out)
        config = stored if config is None else config
        check_resume(stored, config, trained, out)
        if distributed.is_multi_process() and config.learner != "ppo":
            raise VlmrmError(f"the run in {out} trains learner {config.learner!r}, which runs on one device, not "
                             f"over {jax.process_count()} processes; resume it in a single process")
        where = f"from its checkpoint at env step {trained}" if trained is not None else (
            "from its config (it was stopped before its first checkpoint)")
        log(f"resuming {out} {where}: model {config.model}, prompts {config.prompts}")
    pipeline = build(config)
    if distributed.is_main_process():
        config.save(out)
    size = config.image_size or pipeline.clip.image_size
    shipped = config.model == offline_model(config.env, config.env_options) and size <= 64
    slow_hint = ("lower --total-steps or --num-envs" if shipped else
                 f"it renders {size} px frames for {config.model}, while the preset's time holds for the shipped "
                 f"in-domain model at 64 px (drop --model and --image-size), or lower --total-steps")
    state = train(pipeline.ppo, total_steps=config.total_steps, run_dir=out, seed=config.seed, resume=resume,
                  checkpoint_every_s=config.checkpoint_every_s, show_progress=show_progress,
                  meta={"config": dataclasses.asdict(config)}, log=log,
                  expected_s=60.0 * config.expected_minutes if config.expected_minutes else None,
                  slow_hint=slow_hint)
    policy = Checkpoints(out / POLICY_DIR, max_to_keep=1)
    if policy.latest_step() != int(state.env_steps):  # a resumed finished run has saved this policy already
        policy.save(int(state.env_steps), pipeline.ppo.policy_params(state))
    task = pipeline.env.task_metric(config.prompts)
    if distributed.is_main_process():
        plot_reward_curve(read_metrics(out), out / "reward_curve.png", title=" / ".join(config.prompts),
                          keys=[f"env/{task}"] if task else ())
    evaluated = out / "eval.json"
    if resume and config == stored and evaluated.exists() and (out / "rollout.mp4").exists():
        summary = json.loads(evaluated.read_text())
        if summary.get("env_steps") == int(state.env_steps):  # a finished run, resumed unchanged: nothing to redo
            log(f"{out} is finished at env step {summary['env_steps']} and already evaluated ({evaluated}); "
                f"pass a larger --total-steps to train further, or run `python -m experiments.evaluate --run {out}`")
            return summary
    return evaluate_pipeline(pipeline, state, out, log=log)


def rollout_summary(env: Any, prompts: list[str], rewards: np.ndarray, step_metrics: dict, env_steps: int) -> dict:
    """The evaluation summary of one policy's rollout.

    Args:
        env: the unbatched env (its ``task_metric`` and ``episode_success``).
        prompts: the run's goal prompts.
        rewards: float32 [T, B], the VLM reward per step and episode.
        step_metrics: {name: float32 [T, B]} ground-truth per-step values (1 = holds); ``vlm_reward`` is skipped.
        env_steps: env steps the policy was trained for.

    Returns:
        {"env_steps", "episodes" (B), "mean_reward", "prompts", "task", "success_rate" (of the task, or None), and per
        step metric ``<name>/fraction_of_steps`` and ``<name>/success_rate`` (the env's ``episode_success`` rule;
        VLM-RM's: the criterion holds on at least 50% of the steps)}.
    """
    rewards = np.asarray(rewards)
    task = env.task_metric(prompts)
    summary = {"env_steps": int(env_steps), "episodes": int(rewards.shape[1]), "mean_reward": float(rewards.mean()),
               "prompts": prompts, "task": task, "success_rate": None}
    for name, values in step_metrics.items():
        if name == "vlm_reward":
            continue
        holds = np.asarray(values) > 0.5  # [T, B]
        summary[f"{name}/fraction_of_steps"] = float(holds.mean())
        summary[f"{name}/success_rate"] = float(np.mean(env.episode_success(holds)))
    if task is not None:
        summary["success_rate"] = summary[f"{task}/success_rate"]
    return summary


def save_rollout_states(path: str | Path, states) -> Path:
    """Writes the physics states of an evaluation rollout to ``path`` (``.npz``, atomically): ``qpos`` float32
    [episodes, T, nq] and ``qvel`` float32 [episodes, T, nv] (generalised positions in metres and radians, velocities
    in m/s and rad/s) after each of the T env steps.

    ``states`` is :class:`~vlmrm_jax.eval.rollout.Rollout`'s ``states`` (leaves [T, episodes, ...]). The file is the
    ``policy_states`` input of :class:`~vlmrm_jax.envs.humanoid.HumanoidSource`: the states a trained policy visits,
    labelled there by the ground-truth predicates, so a reward model can be retrained on them.

    Raises:
        VlmrmError: if the env's physics state has no ``qpos``/``qvel`` (the classic-control envs).
    """
    import io

    from vlmrm_jax.rl.checkpoint import save_bytes_atomic

    physics = states.pipeline_state
    if not (hasattr(physics, "qpos") and hasattr(physics, "qvel")):
        raise VlmrmError(f"this env's state ({type(physics).__name__}) has no qpos/qvel to save; --save-states "
                         f"applies to the MuJoCo envs (humanoid)")
    buffer = io.BytesIO()
    np.savez(buffer, qpos=np.swapaxes(np.asarray(physics.qpos, np.float32), 0, 1),
             qvel=np.swapaxes(np.asarray(physics.qvel, np.float32), 0, 1))
    save_bytes_atomic(path, buffer.getvalue())
    return Path(path)


def evaluate_pipeline(pipeline: Pipeline, state, out: str | Path, *, seed: int = 1,
                      video_name: str = "rollout.mp4", states_path: str | Path | None = None,
                      log: Callable[[str], None] = print) -> dict:
    """Rolls out the deterministic policy for ``eval_episodes`` full episodes, writes the video and ``eval.json``
    (and with ``states_path`` the rollout's physics states, :func:`save_rollout_states`).

    Returns:
        {"env_steps", "episodes", "mean_reward", "prompts", "task" (the env's success criterion for the prompts, or
        None), "success_rate" (of that task, or None), and per step metric of the env (pose predicates, true task
        criterion) ``<name>/fraction_of_steps`` and ``<name>/success_rate`` (by the env's ``episode_success``
        rule; VLM-RM's: the criterion holds on at least 50% of the steps)}.

    With several processes (:mod:`vlmrm_jax.rl.distributed`) the evaluation reads only the replicated parts of
    ``state`` (policy, normaliser, ``env_steps``), never the env batch split over the hosts: each process copies
    them to this host and rolls out the same episodes from the same key on its own device (no collective), so all
    return the same summary, and process 0 alone renders and writes the video and ``eval.json`` and logs.
    """
    out = Path(out)
    config = pipeline.config
    log = distributed.main_process_only(log)
    env_steps = int(state.env_steps)
    if distributed.is_multi_process():  # global arrays on all hosts' devices -> NumPy, closed over by the rollout
        state = state.replace(env_state=None, optimizer_state=None, params=distributed.host_value(state.params),
                              normalizer_params=distributed.host_value(state.normalizer_params))
    policy = make_policy_fn(pipeline.ppo, state, deterministic=True)

    @jax.jit
    def run(weights, key):  # the CLIP weights as an argument, not constants of the compiled rollout
        return rollout(pipeline.env, policy, key, num_episodes=config.eval_episodes,
                       episode_length=pipeline.ppo.config.episode_length, render_fn=pipeline.render_fn,
                       embed_fn=functools.partial(pipeline.clip.embed_images, weights), reward=pipeline.reward,
                       metrics_fn=pipeline.metrics_fn)

    result = run(pipeline.clip.params, jax.random.PRNGKey(seed))
    rewards = np.asarray(result.rewards)
    summary = rollout_summary(pipeline.env, config.prompts, rewards, result.step_metrics, env_steps)
    task = summary["task"]
    if not distributed.is_main_process():
        return summary
    video_render = pipeline.env.make_render_fn(config.video_size, config.video_size, shadows=config.shadows)
    frames = to_uint8(episode_frames(video_render, result.states, episode=0))
    captions = [f"step {t:3d}  VLM reward {r:.4f}" for t, r in enumerate(rewards[:, 0])]
    write_video(out / video_name, caption_frames(np.asarray(frames), captions))
    save_json_atomic(out / "eval.json", summary)
    if states_path is not None:
        log(f"physics states of the {config.eval_episodes} episodes: {save_rollout_states(states_path, result.states)}")
    success = f"; success rate ({task}) {summary['success_rate']:.2f}" if task else ""
    log(f"evaluation over {config.eval_episodes} episodes: mean VLM reward {summary['mean_reward']:.4f}{success}; "
        f"video {out / video_name}")
    return summary


def evaluate_run(run_dir: str | Path, *, episodes: int | None = None, seed: int = 1,
                 states_path: str | Path | None = None, log: Callable[[str], None] = print) -> dict:
    """Loads a run's config and latest checkpoint, then evaluates it as :func:`evaluate_pipeline` does (writing the
    rollout's physics states to ``states_path`` if given).

    Raises:
        VlmrmError: if ``run_dir`` holds no run or no checkpoint, or the checkpoint is corrupt.
    """
    run_dir = Path(run_dir)
    config = RunConfig.load(run_dir)
    if episodes is not None:
        config = dataclasses.replace(config, eval_episodes=episodes)
    pipeline = build(config)
    abstract = jax.eval_shape(pipeline.ppo.init, jax.random.PRNGKey(0))
    state, _ = Checkpoints(run_dir / CHECKPOINT_DIR).restore(abstract)
    return evaluate_pipeline(pipeline, state, run_dir, seed=seed, video_name="rollout_eval.mp4",
                             states_path=states_path, log=log)


#: The shipped offline models each env falls back to when no hub CLIP is available (see the README), with the env
#: options their training frames were rendered with: a CLIP judges frames best from the look and camera it was
#: trained on (docs/humanoid_setup.md). An option a view leaves out matches any value (mountain-car-clip-tiny was
#: trained on both looks); an option a run leaves out takes the env's default, which the first view of each env is.
OFFLINE_MODEL_VIEWS: dict[str, tuple[tuple[dict[str, str], str], ...]] = {
    "humanoid": (({"look": "brax", "camera": "tracking"}, "humanoid-clip-tiny"),
                 ({"look": "paper", "camera": "paper"}, "humanoid-clip-tiny-paper")),
    "cartpole": (({}, "cartpole-clip-tiny"),),
    "mountain_car": (({}, "mountain-car-clip-tiny"),),
    "stacking": (({}, "stacking-clip-tiny"),),
}


def offline_model(env: str, env_options: dict[str, Any] | None = None) -> str | None:
    """The shipped offline model trained on frames of ``env`` rendered with ``env_options`` (``RunConfig.env_options``,
    e.g. ``{"look": "paper", "camera": "paper"}``), or None when no shipped model was (e.g. the humanoid's oblique
    camera) or ``env`` has none. See :data:`OFFLINE_MODEL_VIEWS`."""
    views = OFFLINE_MODEL_VIEWS.get(env, ())
    options = {**(views[0][0] if views else {}), **(env_options or {})}  # the first view holds the env's defaults
    for view, name in views:
        if all(options.get(key) == value for key, value in view.items()):
            return name
    return None


def _options_text(options: dict[str, Any]) -> str:
    """'look paper, camera paper': env options as a message shows them, in the dict's order."""
    return ", ".join(f"{key} {value}" for key, value in options.items())


def _views_text(env: str) -> str:
    """'humanoid-clip-tiny (look brax, camera tracking), ...': the shipped models of ``env`` and their frames."""
    return ", ".join(name + (f" ({_options_text(view)})" if view else "")
                     for view, name in OFFLINE_MODEL_VIEWS.get(env, ()))


def choose_model(requested: str | None, env: str, *, env_options: dict[str, Any] | None = None,
                 prefer_hub: bool = True) -> tuple[str, str]:
    """Picks the CLIP for a run and says why.

    With ``requested`` (``--model``): returned as given (:meth:`CLIP.load` validates it and resolves shipped
    names). Without, and with ``prefer_hub`` (the accelerator preset, the landscape tool): ``openai/clip-vit-base-
    patch32`` if it is in the local Hugging Face cache or the hub answers (skipped when ``HF_HUB_OFFLINE=1``), else
    the shipped offline model trained on the env's frames with ``env_options`` (:func:`offline_model`). Without
    ``prefer_hub`` (the CPU preset: a ViT-B/32 at 224 px runs ~12 env steps/s on a 2-core CPU, hours instead of
    minutes): that shipped model (64 px input).

    Returns:
        (hub id, directory or shipped name; a one-line reason).

    Raises:
        ModelNotFoundError: when nothing is available, e.g. no shipped model was trained on frames with these
            ``env_options`` (the humanoid's oblique camera); the message says what to do.
    """
    from huggingface_hub import HfApi, try_to_load_from_cache

    from vlmrm_jax.models import DEFAULT_CLIP
    from vlmrm_jax.models.registry import resolve_model

    if requested:
        return requested, "given by --model"
    offline = offline_model(env, env_options)
    view = _options_text(dict(sorted((env_options or {}).items())))
    if not prefer_hub and offline is not None:
        resolve_model(offline)  # raises ModelNotFoundError with the fix when the shipped files are missing
        return offline, (f"the shipped in-domain model for {env}{' frames with ' + view if view else ''}, sized for "
                         f"a CPU; pass --model {DEFAULT_CLIP} for a hub CLIP (224 px: hours on a CPU)")
    if prefer_hub:
        if isinstance(try_to_load_from_cache(DEFAULT_CLIP, "config.json"), str):
            return DEFAULT_CLIP, "found in the local Hugging Face cache"
        if os.environ.get("HF_HUB_OFFLINE", "0") in ("0", "", "false", "False"):
            try:
                HfApi().model_info(DEFAULT_CLIP, timeout=5)
                return DEFAULT_CLIP, "reachable on the Hugging Face hub"
            except Exception:  # no network, DNS failure, hub error: fall back to the shipped model
                pass
    if offline is None:
        shipped = _views_text(env)
        fix = (f"no shipped model was trained on {env} frames with {view} (shipped: {shipped}); pass --model PATH to "
               f"a CLIP trained on such frames (docs/offline_models.md) or use a shipped model's options"
               if shipped else f"no offline model is shipped for env {env!r}; pass --model PATH to a local CLIP "
               f"directory")
        if prefer_hub:
            fix = (f"{DEFAULT_CLIP} is neither in the local Hugging Face cache nor reachable, and {fix} (or copy a "
                   f"Hugging Face cache holding {DEFAULT_CLIP} here and set HF_HUB_OFFLINE=1)")
        raise ModelNotFoundError(f"no CLIP available for env {env!r}: {fix}")
    resolve_model(offline)  # raises ModelNotFoundError with the fix when the shipped files are missing
    return offline, (f"{DEFAULT_CLIP} is not in the local Hugging Face cache and the hub is unreachable; "
                     f"using the shipped offline model {offline!r}")


def device_kind() -> str:
    """'cpu', 'gpu' or 'tpu': the platform of JAX's default backend."""
    return jax.default_backend() if jax.default_backend() in ("gpu", "tpu") else "cpu"
