"""A VLM-RM sweep end to end: seeds x alphas of one CLIP trained as ONE jitted program
(:class:`vlmrm_jax.rl.SweepPPO`), then every run's success rate from one vmapped evaluation rollout.

Rocamonde et al. 2023 report their humanoid results as sweeps over alpha and seeds for each CLIP size; this module
is the training half of that sweep for one model (the CLI ``experiments.scaling_sweep`` loops over models). The
pieces are those of :func:`vlmrm_jax.pipeline.build` (env, renderer, CLIP, goal-baseline reward, the
:func:`~vlmrm_jax.envs.wrappers.wrap_for_vlm_training` stack), with one reward per run.

Runs are ordered alpha-major: run ``i`` has ``alphas[i // len(seeds)]`` and ``seeds[i % len(seeds)]``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
from pathlib import Path
from typing import Any, Callable, Sequence

import jax

from vlmrm_jax.envs import make_env
from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.eval.rollout import rollout
from vlmrm_jax.models import CLIP
from vlmrm_jax.pipeline import (Pipeline, RunConfig, check_resume, prepare_run_dir, rollout_summary,
                                training_env_factory)
from vlmrm_jax.rewards import GoalBaselineReward, check_alpha
from vlmrm_jax.rl import SweepPPO, SweepState, distributed, train, trained_steps
from vlmrm_jax.rl.checkpoint import save_json_atomic

#: The sweep's description in its run directory: the base RunConfig, the alphas, the seeds and the runs.
SWEEP_FILE = "sweep.json"
#: Per-run evaluation summaries in the run directory.
EVAL_FILE = "eval.json"


@dataclasses.dataclass
class SweepPipeline:
    """The assembled pieces of a sweep (see :func:`build_sweep`).

    Attributes:
        config: the base run configuration (env, prompts, model, sizes, PPO hyper-parameters, ``total_steps``,
            ``seed`` = the trainer's seed); its ``alpha`` is ignored, each run has its own.
        alphas: tuple of R floats, run i's alpha.
        seeds: tuple of R ints, run i's seed (its PRNG key is ``fold_in(PRNGKey(config.seed), seeds[i])``).
        env: the unbatched env.
        clip: the loaded CLIP (weights ``clip.params``, shared by all runs).
        rewards: R goal-baseline rewards of the config's prompts, run i's with ``alphas[i]``.
        render_fn: renders ONE state at the CLIP's frame size: ``State -> float32 [S, S, 3]``.
        metrics_fn: the env's ground-truth per-step values, ``State -> {name: float32 []}``.
        sweep: the learner of all R runs.
    """

    config: RunConfig
    alphas: tuple[float, ...]
    seeds: tuple[int, ...]
    env: Any
    clip: CLIP
    rewards: list[GoalBaselineReward]
    render_fn: Callable
    metrics_fn: Callable | None
    sweep: SweepPPO

    @property
    def num_runs(self) -> int:
        """R."""
        return len(self.alphas)

    def run_pipeline(self, i: int) -> Pipeline:
        """Run ``i`` as a single-run :class:`~vlmrm_jax.pipeline.Pipeline` (its alpha and reward, the sweep's
        single-run PPO), e.g. for ``evaluate_pipeline(sp.run_pipeline(i), sp.sweep.run_state(state, i), out)``
        (which also writes a video).

        Raises:
            VlmrmError: if ``i`` is not in [0, R).
        """
        return Pipeline(dataclasses.replace(self.config, alpha=self.alphas[i]), self.env, self.clip,
                        self.sweep.run_reward(i), self.render_fn, self.metrics_fn, self.sweep.ppo)


def _check_runs(alphas: Sequence[float], seeds: Sequence[int]) -> tuple[tuple[float, ...], tuple[int, ...]]:
    alphas, seeds = [check_alpha(a) for a in alphas], list(seeds)
    if not alphas or not seeds:
        raise VlmrmError(f"a sweep needs at least one alpha and one seed (got alphas={alphas}, seeds={seeds}); "
                         f"pass e.g. --alphas 0,0.5,1 --seeds 0,1")
    for what, values in (("alpha", alphas), ("seed", seeds)):
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            raise VlmrmError(f"{what} {twice[0]!r} is given twice; pass each {what} once")
    return tuple(alphas), tuple(seeds)  # SweepPPO checks the seeds


def build_sweep(config: RunConfig, alphas: Sequence[float], seeds: Sequence[int], *, clip: CLIP | None = None,
                devices: Sequence[jax.Device] | None = None) -> SweepPipeline:
    """Loads the CLIP (unless given), embeds the prompts once, and assembles env, renderer, the R = len(alphas) x
    len(seeds) rewards and the :class:`~vlmrm_jax.rl.SweepPPO` of all runs (alpha-major order).

    Args:
        config: the base run (``learner`` must be ``"ppo"``; ``alpha`` is ignored).
        alphas: the alphas, each in [0, 1], each once.
        seeds: the seeds, ints in [0, 2**31), each once.
        clip: an already loaded CLIP for ``config.model`` (skips loading it again).
        devices: devices to split the runs over (default all); R must be a multiple of their number.

    Raises:
        VlmrmError: a SAC config, a bad or repeated alpha or seed, R not a multiple of the device count, or what
            :func:`vlmrm_jax.pipeline.build` raises (unknown env or model, bad sizes).
    """
    if config.learner != "ppo":
        raise VlmrmError(f"learner={config.learner!r}: a sweep trains PPO runs; use learner 'ppo'")
    alphas, seeds = _check_runs(alphas, seeds)
    runs = list(itertools.product(alphas, seeds))
    env = make_env(config.env, **config.env_options)
    clip = CLIP.load(config.model) if clip is None else clip
    goal, baseline = clip.embed_text(config.prompts), clip.embed_text(config.baseline_prompts)
    by_alpha = {a: GoalBaselineReward.from_embeddings(goal, baseline, a) for a in alphas}
    size = config.image_size or clip.image_size
    render_fn = env.make_render_fn(size, size, shadows=config.shadows)
    metrics_fn = env.step_metrics_fn()
    ppo_config = config.ppo_config()
    make_train_env = training_env_factory(env, clip, render_fn, metrics_fn, ppo_config.episode_length)
    rewards = [by_alpha[a] for a, _ in runs]
    sweep = SweepPPO(make_train_env, clip.params, rewards, [s for _, s in runs], ppo_config, devices=devices)
    return SweepPipeline(config, sweep.alphas, sweep.seeds, env, clip, rewards, render_fn, metrics_fn, sweep)


def evaluate_sweep(sp: SweepPipeline, state: SweepState, *, seed: int = 1,
                   episodes: int | None = None) -> list[dict]:
    """Rolls out every run's deterministic policy for ``episodes`` full episodes in ONE jitted program (vmapped
    over the runs, split over the sweep's devices), from the same key for every run (paired episodes).

    Args:
        sp: the sweep.
        state: its state (e.g. what :func:`vlmrm_jax.rl.train` returned).
        seed: PRNG seed of the evaluation episodes.
        episodes: parallel episodes per run; default ``sp.config.eval_episodes``.

    Returns:
        One dict per run, as :func:`vlmrm_jax.pipeline.evaluate_pipeline`'s summary plus ``run``, ``alpha`` and
        ``seed``: {"run", "alpha", "seed", "env_steps", "episodes", "mean_reward" (the run's own VLM reward),
        "prompts", "task", "success_rate" (of the task, or None), ``<name>/fraction_of_steps`` and
        ``<name>/success_rate`` per ground-truth step metric (VLM-RM's rule: the criterion holds on at least 50%
        of an episode's steps)}. No video (use :meth:`SweepPipeline.run_pipeline` with ``evaluate_pipeline``).
    """
    config = sp.config
    episodes = config.eval_episodes if episodes is None else episodes
    ppo = sp.sweep.ppo

    @jax.jit
    def run(weights, rewards, params, key):
        def one(reward, params):
            return rollout(sp.env, ppo.make_policy(params, deterministic=True), key, num_episodes=episodes,
                           episode_length=ppo.config.episode_length, render_fn=sp.render_fn,
                           embed_fn=functools.partial(sp.clip.embed_images, weights), reward=reward,
                           metrics_fn=sp.metrics_fn, keep_states=False)

        result = jax.vmap(one)(rewards, params)
        return result.rewards, result.step_metrics  # [R, T, B]

    params = (state.runs.normalizer_params, state.runs.params.policy, state.runs.params.value)
    rewards, step_metrics = distributed.host_value(
        run(sp.sweep.weights, sp.sweep.rewards, params, jax.random.PRNGKey(seed)))
    return [{"run": i, "alpha": sp.alphas[i], "seed": sp.seeds[i],
             **rollout_summary(sp.env, config.prompts, rewards[i], {k: v[i] for k, v in step_metrics.items()},
                               int(state.env_steps))}
            for i in range(sp.num_runs)]


def train_sweep(config: RunConfig | None, alphas: Sequence[float] | None, seeds: Sequence[int] | None,
                out: str | Path, *, resume: bool = False, clip: CLIP | None = None,
                devices: Sequence[jax.Device] | None = None, show_progress: bool = True,
                log: Callable[[str], None] = print) -> list[dict]:
    """Trains all runs of a sweep for ``config.total_steps`` env steps EACH, then evaluates them.

    Writes into ``out``: ``sweep.json`` (base config, alphas, seeds, the runs), ``metrics.jsonl`` (per iteration:
    every PPO metric as the mean over runs and as ``run<i>/<name>``), ``checkpoints/`` (the whole
    :class:`~vlmrm_jax.rl.SweepState`, orbax) and ``eval.json`` (``{"runs": [...]}``, see :func:`evaluate_sweep`).

    Args:
        config, alphas, seeds: what to run (see :func:`build_sweep`). With ``resume``, None takes the stored value;
            a given config may change only :data:`vlmrm_jax.pipeline.RESUMABLE_FIELDS`, alphas and seeds not at all.
        out: the run directory (new and empty, or the sweep to resume).
        resume: continue from the latest checkpoint in ``out``.
        clip, devices: as for :func:`build_sweep`.
        show_progress, log: as for :func:`vlmrm_jax.rl.train`.

    Returns:
        The per-run evaluation summaries.

    Raises:
        VlmrmError: bad input (see :func:`build_sweep`, :func:`vlmrm_jax.pipeline.prepare_run_dir`), a resumed
            sweep whose alphas, seeds or config differ, a corrupt checkpoint, or NaN in training.
    """
    out = Path(out)
    log = log if distributed.is_main_process() else (lambda _: None)
    if not resume:
        prepare_run_dir(out, resume=False)
    else:
        path = out / SWEEP_FILE
        if not path.exists():
            raise VlmrmError(f"--resume given but {out} holds no sweep ({SWEEP_FILE} missing); drop --resume to "
                             f"start a new sweep there")
        stored = json.loads(path.read_text())
        stored_config = RunConfig(**stored["config"])
        for name, given, kept in (("alphas", alphas, stored["alphas"]), ("seeds", seeds, stored["seeds"])):
            if given is not None and [float(v) if name == "alphas" else v for v in given] != kept:
                raise VlmrmError(f"--{name} {list(given)} differ from the sweep in {out}, trained with {kept}; drop "
                                 f"--{name}, or start a new sweep in another --out")
        alphas, seeds = stored["alphas"], stored["seeds"]
        config = stored_config if config is None else config
        check_resume(stored_config, config, trained_steps(out), out)
    sp = build_sweep(config, alphas, seeds, clip=clip, devices=devices)
    alphas, seeds = _check_runs(alphas, seeds)
    description = {"config": dataclasses.asdict(config), "alphas": list(alphas), "seeds": [int(s) for s in seeds],
                   "runs": [{"run": i, "alpha": a, "seed": s} for i, (a, s) in enumerate(zip(sp.alphas, sp.seeds))]}
    if distributed.is_main_process():
        save_json_atomic(out / SWEEP_FILE, description)
    state = train(sp.sweep, total_steps=config.total_steps, run_dir=out, seed=config.seed, resume=resume,
                  checkpoint_every_s=config.checkpoint_every_s, show_progress=show_progress,
                  meta={"sweep": description}, log=log)
    summaries = evaluate_sweep(sp, state)
    if distributed.is_main_process():
        save_json_atomic(out / EVAL_FILE, {"runs": summaries})
    for s in summaries:
        success = f", success rate ({s['task']}) {s['success_rate']:.2f}" if s["task"] else ""
        log(f"run {s['run']} (alpha {s['alpha']}, seed {s['seed']}): mean VLM reward {s['mean_reward']:.4f}"
            f"{success}")
    return summaries
