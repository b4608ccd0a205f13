"""The host-side training loop: progress, metrics file, checkpoints, resume and the NaN guard around :class:`PPO`."""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
from tqdm.auto import tqdm

from vlmrm_jax.errors import CheckpointError, NonFiniteError
from vlmrm_jax.metrics_file import METRICS_FILE, parse_metrics
from vlmrm_jax.rl import distributed
from vlmrm_jax.rl.checkpoint import Checkpoints
from vlmrm_jax.rl.ppo import PPO, TrainState

CHECKPOINT_DIR = "checkpoints"
#: Key of a checkpoint's meta holding the wall-clock seconds trained so far, summed over resumed sessions.
WALL_TIME = "wall_s"
#: A warning is printed when the ETA measured after the second iteration exceeds the promised time this many times.
SLOW_FACTOR = 3.0
#: Compiling the first iteration took 1.9x (CartPole, ViT-B/32-sized CLIP), 3.4x (CartPole, cartpole-clip-tiny) and
#: 6.9x (humanoid, humanoid-clip-tiny) as long as compiling ``init`` (reset, render and CLIP of the reset frame) on
#: the 2-core CPU: the rough estimate used before a run's first iteration has been compiled on this machine.
COMPILE_RATIO = 3.0


class _CompileClock:
    """Seconds JAX has spent tracing, lowering and compiling since the process started (jax.monitoring events)."""

    EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
              "/jax/core/compile/backend_compile_duration")

    def __init__(self):
        self.seconds = 0.0
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event: str, duration: float, **_) -> None:
        if event in self.EVENTS:
            self.seconds += duration


_COMPILE_CLOCK = _CompileClock()


def _duration(seconds: float) -> str:
    """``75`` -> ``'1 min 15 s'``: seconds in words for progress lines."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _all_finite(tree) -> bool:
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)]
    return bool(jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))) if leaves else True


def _truncate_metrics(path: Path, max_step: int) -> None:
    """Drops metric lines written after the checkpoint a resumed run restarts from."""
    if not path.exists():
        return
    kept = [r for r in parse_metrics(path) if r.get("env_steps", 0) <= max_step]
    path.write_text("".join(json.dumps(r) + "\n" for r in kept))


def train(ppo: PPO, *, total_steps: int, run_dir: str | Path, seed: int = 0, resume: bool = False,
          checkpoint_every_s: float = 300.0, meta: dict | None = None,
          on_metrics: Callable[[dict], None] | None = None, show_progress: bool = True,
          log: Callable[[str], None] = print, expected_s: float | None = None, slow_hint: str = "") -> TrainState:
    """Runs PPO iterations until ``total_steps`` env steps, with checkpoints and a metrics file in ``run_dir``.

    Any learner with the same shape runs here too (e.g. :class:`vlmrm_jax.rl.SAC`,
    :class:`vlmrm_jax.agent.CollectInfer`): jittable ``init(rng)`` and ``iteration(state) -> (state, metrics)``, a
    state with ``env_steps`` and ``params``, and a
    ``reward_mean`` metric (a ``success_rate`` metric is shown in the progress bar too).

    Every iteration appends one JSON line to ``run_dir/metrics.jsonl`` (``env_steps``, ``steps_per_s``,
    ``wall_s``, and the float metrics of :meth:`PPO.iteration`) and updates a progress bar (env steps/s, mean
    reward, ETA). A checkpoint of the whole :class:`TrainState` is written to ``run_dir/checkpoints/<env_step>``
    after the first iteration of each session, then at most every ``checkpoint_every_s`` seconds, and at the end,
    so a run killed at any moment loses at most one checkpoint interval. ``wall_s`` sums over resumed sessions
    (it is stored in each checkpoint's meta under :data:`WALL_TIME`).

    Before the first iteration it logs ``compiling (first iteration, ~N s on this machine)``: N is the compile time
    measured by an earlier session of this run (the ``compile_s`` of its first metrics line), else
    :data:`COMPILE_RATIO` times the time ``init`` took to compile. After the second iteration (which compiles
    nothing), one line with the first iteration's compile time (its wall time minus the second's), the run time of
    an iteration and the ETA of the remaining ones, and a warning when the whole run will take more than
    :data:`SLOW_FACTOR` times ``expected_s``.

    With several processes (:mod:`vlmrm_jax.rl.distributed`, one per host, all calling ``train`` with the same
    arguments and a ``run_dir`` they share) only process 0 writes ``metrics.jsonl``, draws the progress bar and logs;
    every process reads the replicated metrics and takes part in each orbax save and restore (collective: each
    writes its own shards of the env state), and whether a checkpoint is due is process 0's decision. With one
    process this is the plain loop above.

    Args:
        ppo: the agent and its env.
        total_steps: env steps to train for (rounded up to whole iterations).
        run_dir: output directory.
        seed: PRNG seed of a new run (ignored on resume: the rng is part of the checkpoint).
        resume: continue from the latest checkpoint in ``run_dir``; with none there yet (a run killed before its
            first checkpoint), start afresh from ``seed``, dropping the metrics lines that run left.
        checkpoint_every_s: wall-clock seconds between checkpoints.
        meta: JSON-serialisable data stored with each checkpoint (e.g. the run's config).
        on_metrics: called with each iteration's metrics dict (on every process).
        show_progress: draw a tqdm progress bar (on process 0).
        log: where the compile, ETA and warning lines go (on process 0).
        expected_s: the wall time the run's sizes promise (seconds), or None for no warning.
        slow_hint: what to change when the run is too slow, appended to the warning.

    Returns:
        The final TrainState.

    Raises:
        CheckpointError: a corrupt checkpoint, or checkpoints in ``run_dir`` without ``resume``.
        NonFiniteError: a NaN/Inf in the metrics or parameters; the last good checkpoint is kept and the bad state
            is not saved.
    """
    run_dir = Path(run_dir)
    main = distributed.is_main_process()  # the one process that writes plain files and logs; True with one process
    metrics_path = run_dir / METRICS_FILE
    checkpoints = Checkpoints(run_dir / CHECKPOINT_DIR)
    compile_estimate = None
    resume = resume and checkpoints.latest_step() is not None
    if resume:
        abstract = jax.eval_shape(ppo.init, jax.random.PRNGKey(seed))
        state, restored_meta = checkpoints.restore(abstract)
        wall_before = float(restored_meta.get(WALL_TIME, 0.0))
        if main:
            _truncate_metrics(metrics_path, int(state.env_steps))
            compiled = [r["compile_s"] for r in read_metrics(run_dir) if "compile_s" in r]
            compile_estimate = compiled[-1] if compiled else None
    else:
        if checkpoints.latest_step() is not None:
            raise CheckpointError(f"{checkpoints.directory} already holds checkpoints; pass --resume to continue "
                                  f"that run or choose an empty --out directory")
        if main:
            _truncate_metrics(metrics_path, -1)  # lines of an earlier session killed before its first checkpoint
        clock = _COMPILE_CLOCK.seconds
        state = jax.block_until_ready(ppo.init(jax.random.PRNGKey(seed)))
        compile_estimate = COMPILE_RATIO * (_COMPILE_CLOCK.seconds - clock) or None
        wall_before = 0.0
    start_steps = int(state.env_steps)
    last_good = start_steps if resume else None
    show_progress = show_progress and main
    log = distributed.main_process_only(tqdm.write if log is print and show_progress else log)  # above the bar
    if start_steps < total_steps:
        about = f", ~{_duration(compile_estimate)} on this machine" if compile_estimate else ""
        log(f"compiling (first iteration{about})")
    bar = tqdm(total=total_steps, initial=min(start_steps, total_steps), unit="step", unit_scale=True,
               disable=not show_progress, dynamic_ncols=True)
    t_start = t_ckpt = time.time()
    first, first_dt = True, None
    try:
        with metrics_path.open("a") if main else contextlib.nullcontext() as metrics_file:
            while int(state.env_steps) < total_steps:
                t0, steps_before, clock = time.time(), int(state.env_steps), _COMPILE_CLOCK.seconds
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
                          "wall_s": wall_before + time.time() - t_start, **metrics}
                if first:
                    record["compile_s"] = min(_COMPILE_CLOCK.seconds - clock, dt)
                    first_dt = dt
                elif first_dt is not None:  # the second iteration runs without compiling: time it for the ETA
                    _report_first_iteration(max(first_dt - dt, 0.0), dt, steps - steps_before, total_steps - steps,
                                            record["wall_s"], expected_s, slow_hint, log)
                    first_dt = None
                if main:
                    metrics_file.write(json.dumps(record) + "\n")
                    metrics_file.flush()
                if on_metrics is not None:
                    on_metrics(record)
                bar.update(min(steps, total_steps) - bar.n)
                success = {"success": f"{metrics['success_rate']:.3f}"} if "success_rate" in metrics else {}
                bar.set_postfix(reward=f"{metrics['reward_mean']:.4f}", **success, sps=f"{record['steps_per_s']:.0f}")
                done = steps >= total_steps
                if distributed.main_process_decides(first or done or time.time() - t_ckpt >= checkpoint_every_s):
                    checkpoints.save(steps, state, {**(meta or {}), WALL_TIME: record["wall_s"]})
                    last_good, t_ckpt = steps, time.time()
                first = False
    finally:
        bar.close()
        checkpoints.close()
    return state


def _report_first_iteration(compile_s: float, run_s: float, steps: int, remaining: int, wall_s: float,
                            expected_s: float | None, slow_hint: str, log: Callable[[str], None]) -> None:
    """Logs, after the second iteration, the first one's compile time (its wall time minus the second's), the run
    time of one iteration (the second's), the ETA, and the too-slow warning.

    JAX's compile events (:class:`_CompileClock`) overlap, so their sum can exceed the first iteration's wall time:
    they only feed the rough estimate printed before a run's first compile."""
    run_s = max(run_s, 1e-3)
    eta = run_s * math.ceil(max(remaining, 0) / max(steps, 1))
    log(f"first iteration: compiled in {_duration(compile_s)}, ran in {run_s:.1f} s ({steps / run_s:.0f} env "
        f"steps/s); ETA {_duration(eta)} for the remaining {max(remaining, 0):,} env steps")
    if expected_s and wall_s + eta > SLOW_FACTOR * expected_s:
        log(f"warning: this run will take ~{_duration(wall_s + eta)}, far more than the ~{_duration(expected_s)} "
            f"its size preset promises{'; ' + slow_hint if slow_hint else ''}")


def trained_steps(run_dir: str | Path) -> int | None:
    """The env step of the latest checkpoint in ``run_dir/checkpoints``, or None; creates nothing (a refused resume
    leaves the run directory as it was)."""
    directory = Path(run_dir) / CHECKPOINT_DIR
    if not directory.exists():
        return None
    checkpoints = Checkpoints(directory)
    try:
        return checkpoints.latest_step()
    finally:
        checkpoints.close()


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of ``run_dir/metrics.jsonl``, one dict per training iteration (``[]`` when there is no file).

    A torn last line (a run killed while writing it) is dropped.

    Raises:
        VlmrmError: naming the file and line, when a line before the last is not JSON.
    """
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    return parse_metrics(path)

