"""The host-side training loop: progress, metrics file, checkpoints, resume and the NaN guard around :class:`PPO`."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
from tqdm.auto import tqdm

from vlmrm_jax.errors import CheckpointError, NonFiniteError
from vlmrm_jax.rl.checkpoint import Checkpoints
from vlmrm_jax.rl.ppo import PPO, TrainState

METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"


def _all_finite(tree) -> bool:
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)]
    return bool(jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))) if leaves else True


def _truncate_metrics(path: Path, max_step: int) -> None:
    """Drops metric lines written after the checkpoint a resumed run restarts from."""
    if not path.exists():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [line for line in lines if json.loads(line).get("env_steps", 0) <= max_step]
    path.write_text("".join(line + "\n" for line in kept))


def train(ppo: PPO, *, total_steps: int, run_dir: str | Path, seed: int = 0, resume: bool = False,
          checkpoint_every_s: float = 300.0, meta: dict | None = None,
          on_metrics: Callable[[dict], None] | None = None, show_progress: bool = True) -> TrainState:
    """Runs PPO iterations until ``total_steps`` env steps, with checkpoints and a metrics file in ``run_dir``.

    Any learner with the same shape runs here too (e.g. :class:`vlmrm_jax.agent.CollectInfer`): jittable
    ``init(rng)`` and ``iteration(state) -> (state, metrics)``, a state with ``env_steps`` and ``params``, and a
    ``reward_mean`` metric (a ``success_rate`` metric is shown in the progress bar too).

    Every iteration appends one JSON line to ``run_dir/metrics.jsonl`` (``env_steps``, ``steps_per_s``,
    ``wall_s``, and the float metrics of :meth:`PPO.iteration`) and updates a progress bar (env steps/s, mean
    reward, ETA). A checkpoint of the whole :class:`TrainState` is written to ``run_dir/checkpoints/<env_step>``
    at most every ``checkpoint_every_s`` seconds and at the end.

    Args:
        ppo: the agent and its env.
        total_steps: env steps to train for (rounded up to whole iterations).
        run_dir: output directory.
        seed: PRNG seed of a new run (ignored on resume: the rng is part of the checkpoint).
        resume: continue from the latest checkpoint in ``run_dir``.
        checkpoint_every_s: wall-clock seconds between checkpoints.
        meta: JSON-serialisable data stored with each checkpoint (e.g. the run's config).
        on_metrics: called with each iteration's metrics dict.
        show_progress: draw a tqdm progress bar.

    Returns:
        The final TrainState.

    Raises:
        CheckpointError: ``resume`` with no checkpoint, or a corrupt one.
        NonFiniteError: a NaN/Inf in the metrics or parameters; the last good checkpoint is kept and the bad state
            is not saved.
    """
    run_dir = Path(run_dir)
    metrics_path = run_dir / METRICS_FILE
    checkpoints = Checkpoints(run_dir / CHECKPOINT_DIR)
    if resume:
        abstract = jax.eval_shape(ppo.init, jax.random.PRNGKey(seed))
        state, _ = checkpoints.restore(abstract)
        _truncate_metrics(metrics_path, int(state.env_steps))
    else:
        if checkpoints.latest_step() is not None:
            raise CheckpointError(f"{checkpoints.directory} already holds checkpoints; pass --resume to continue "
                                  f"that run or choose an empty --out directory")
        state = ppo.init(jax.random.PRNGKey(seed))
    start_steps = int(state.env_steps)
    last_good = start_steps if resume else None
    bar = tqdm(total=total_steps, initial=min(start_steps, total_steps), unit="step", unit_scale=True,
               disable=not show_progress, dynamic_ncols=True)
    t_start = t_ckpt = time.time()
    try:
        with metrics_path.open("a") as metrics_file:
            while int(state.env_steps) < total_steps:
                t0, steps_before = time.time(), int(state.env_steps)
                state, metrics = ppo.iteration(state)
                metrics = {k: float(v) for k, v in metrics.items()}
                steps = int(state.env_steps)
                dt = time.time() - t0
                bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
                if bad or not _all_finite(state.params):
                    where = ", ".join(bad) if bad else "network parameters"
                    kept = (f"the last good checkpoint (env step {last_good}) is kept in {checkpoints.directory}"
                            if last_good is not None else "no checkpoint had been written yet")
                    raise NonFiniteError(f"non-finite values in {where} at env step {steps}; {kept}. Lower "
                                         f"--learning-rate or check the reward (prompts, model)")
                record = {"env_steps": steps, "steps_per_s": (steps - steps_before) / dt,
                          "wall_s": time.time() - t_start, **metrics}
                metrics_file.write(json.dumps(record) + "\n")
                metrics_file.flush()
                if on_metrics is not None:
                    on_metrics(record)
                bar.update(min(steps, total_steps) - bar.n)
                success = {"success": f"{metrics['success_rate']:.3f}"} if "success_rate" in metrics else {}
                bar.set_postfix(reward=f"{metrics['reward_mean']:.4f}", **success, sps=f"{record['steps_per_s']:.0f}")
                done = steps >= total_steps
                if done or time.time() - t_ckpt >= checkpoint_every_s:
                    checkpoints.save(steps, state, meta)
                    last_good, t_ckpt = steps, time.time()
    finally:
        bar.close()
        checkpoints.close()
    return state


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of ``run_dir/metrics.jsonl``, one dict per PPO iteration."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

