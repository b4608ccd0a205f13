"""The supervised training loop shared by the reward-model trainer (:mod:`vlmrm_jax.models.training`, CLIP) and the
planner trainer (:mod:`vlmrm_jax.planner.training`, T5).

AdamW with linear warm-up and cosine decay to 5% of the peak learning rate, global-norm clipping and weight decay on
matrices only (not on biases, layer-norm gains or a temperature), as in CLIP (Radford et al. 2021) and T5 fine-tuning;
one jitted step; a loop with a tqdm bar, JSON-lines metrics, evaluation, a NaN stop, and atomic orbax checkpoints
that ``resume`` continues exactly (the batch of step t depends only on the seed and t).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from vlmrm_jax.errors import NonFiniteError, VlmrmError, check_positive_int
from vlmrm_jax.metrics_file import METRICS_FILE, parse_metrics
from vlmrm_jax.rl.checkpoint import Checkpoints

CHECKPOINT_DIR = "checkpoints"


def check_config(config, lr_example: str, non_negative: tuple[str, ...] = ()) -> None:
    """Checks a trainer's config as the user gave it (flag names in the messages: ``batch_size`` is
    ``--batch-size``, the learning rate ``--lr``): ``steps`` and ``batch_size`` positive integers, ``learning_rate``
    a positive finite number, ``warmup_steps``, ``eval_every``, ``log_every`` and ``non_negative`` >= 0.

    Raises:
        VlmrmError: naming the first bad value; a bad learning rate's message shows ``lr_example``.
    """
    for name in ("steps", "batch_size"):
        check_positive_int(name.replace("_", "-"), getattr(config, name))
    if not (config.learning_rate > 0 and math.isfinite(config.learning_rate)):
        raise VlmrmError(f"lr={config.learning_rate!r} must be a positive number, e.g. {lr_example}")
    for name in ("warmup_steps", *non_negative, "eval_every", "log_every"):
        if getattr(config, name) < 0:
            raise VlmrmError(f"{name.replace('_', '-')}={getattr(config, name)!r} must be >= 0")


class TrainState(struct.PyTreeNode):
    """What a step updates: ``step`` (int32 []), ``params`` (the model's weights) and ``opt_state``."""

    step: jax.Array
    params: Any
    opt_state: Any


def make_optimizer(config, **adamw_kwargs) -> optax.GradientTransformation:
    """AdamW (``adamw_kwargs`` such as CLIP's ``b2=0.98, eps=1e-6``) with the warm-up + cosine schedule of
    ``config`` (fields ``learning_rate``, ``warmup_steps``, ``steps``), global-norm clipping at
    ``config.max_grad_norm`` and weight decay ``config.weight_decay`` masked to parameters of >= 2 dimensions."""
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, max(config.warmup_steps, 1),
                                                  max(config.steps, config.warmup_steps + 1),
                                                  end_value=0.05 * config.learning_rate)
    decay_mask = lambda params: jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)  # noqa: E731
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                       optax.adamw(schedule, weight_decay=config.weight_decay, mask=decay_mask, **adamw_kwargs))


def init_state(params, optimizer: optax.GradientTransformation) -> TrainState:
    """Step 0 with fresh optimiser moments; ``params`` are copied (the train step donates its state, and the caller's
    weights must survive). Every leaf is committed to the default device, as the step's outputs are, so the jitted
    step compiles once."""
    params = jax.tree.map(jnp.array, params)
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params))
    return jax.device_put(state, jax.local_devices()[0])


def make_train_step(loss_fn: Callable[..., tuple[jax.Array, dict]],
                    optimizer: optax.GradientTransformation) -> Callable[..., tuple[TrainState, dict]]:
    """The jitted update ``step(state, *batch) -> (state, metrics)`` of ``loss_fn(params, *batch) -> (loss float32
    [], metrics dict of float32 [])``; the metrics gain the gradient's global norm ``grad_norm``. ``state`` is
    donated (its buffers are reused for the new state)."""

    def step(state: TrainState, *batch):
        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, *batch)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return (TrainState(step=state.step + 1, params=params, opt_state=opt_state),
                dict(metrics, grad_norm=optax.global_norm(grads)))

    return jax.jit(step, donate_argnums=0)


def batch_indices(num_examples: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """The examples of step ``step``: B distinct indices (with replacement only if B > N), a function of (seed,
    step) alone, so a resumed run sees the same batches."""
    return np.random.default_rng([seed, step]).choice(num_examples, size=batch_size, replace=batch_size > num_examples)


def _metrics_up_to(path: Path, up_to_step: int) -> list[dict]:
    """The records of a metrics file up to ``up_to_step`` (a torn last line is dropped: :func:`parse_metrics`).

    Raises:
        VlmrmError: a line before the last is not JSON.
    """
    return [r for r in parse_metrics(path) if r.get("step", 0) <= up_to_step] if path.exists() else []


def fit_loop(state: TrainState, train_step: Callable, batch: Callable[[int], tuple], config, out: str | Path, *,
             resume: bool = False, evaluate: Callable[[Any], dict] | None = None, stop_at: int | None = None,
             desc: str = "training", postfix: Callable[[dict], dict] = lambda values: {},
             show_progress: bool = True, log: Callable[[str], None] = print) -> tuple[Any, list[dict]]:
    """Runs ``train_step(state, *batch(step))`` from ``state`` (or, with ``resume``, the latest checkpoint in
    ``out``) to ``config.steps``.

    Writes into ``out``: ``checkpoints/`` (orbax: the whole state and ``config``; every
    ``config.checkpoint_every_s`` seconds and at the end) and ``metrics.jsonl`` (one JSON line every
    ``config.log_every`` steps: the step's metrics averaged over those steps, ``step`` and ``steps_per_s``; and
    ``evaluate(params)`` every ``config.eval_every`` steps and at the end, keys prefixed ``eval/``).

    Args:
        state: the starting state (:func:`init_state`); with ``resume`` only its structure is used.
        train_step: :func:`make_train_step`'s step.
        batch: the arguments after ``state`` of step ``step`` (e.g. from :func:`batch_indices`).
        config: a frozen dataclass with ``steps``, ``log_every``, ``eval_every`` and ``checkpoint_every_s``.
        out: run directory (created).
        resume: continue from the latest checkpoint in ``out``.
        evaluate: ``params -> dict of floats``; None: no evaluation.
        stop_at: stop (with a checkpoint) after this step although the schedule runs to ``config.steps``; a later
            ``resume`` continues exactly (for time-boxed sessions).
        desc: the progress bar's label (it says "compiling" until the first metrics line).
        postfix: the bar's figures from a metrics line.
        show_progress: the tqdm bar (steps, ``postfix``, ETA).

    Returns:
        (params, metric records).

    Raises:
        CheckpointError: ``resume`` without a readable checkpoint.
        NonFiniteError: the loss became NaN or infinite (the last checkpoint is kept).
        VlmrmError: with ``resume``, a line of ``metrics.jsonl`` before its last is not JSON (a torn last line, from
            a kill while it was written, is dropped).
    """
    from tqdm.auto import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = Checkpoints(out / CHECKPOINT_DIR, max_to_keep=2)
    if resume:
        state, _ = checkpoints.restore(state)
        log(f"resumed from step {int(state.step)} in {out / CHECKPOINT_DIR}")
    start = int(state.step)
    metrics_path = out / METRICS_FILE
    records = _metrics_up_to(metrics_path, start) if resume else []
    metrics_path.write_text("".join(json.dumps(r) + "\n" for r in records))

    def append(record: dict) -> None:
        records.append(record)
        with open(metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def run_eval(step: int) -> None:
        if evaluate is not None:
            append(dict({f"eval/{k}": v for k, v in evaluate(state.params).items()}, step=step))

    def save() -> None:
        checkpoints.save(int(state.step), state, {"step": int(state.step), "config": dataclasses.asdict(config)})

    last = min(config.steps, stop_at or config.steps)
    bar = tqdm(total=last, initial=start, disable=not show_progress, desc=f"{desc} (compiling)", unit="step",
               dynamic_ncols=True)
    last_save, last_log, window = time.monotonic(), time.monotonic(), []
    try:
        for step in range(start, last):
            state, metrics = train_step(state, *batch(step))
            window.append(metrics)
            done = step + 1
            if done % max(config.log_every, 1) == 0 or done == last:
                values = {k: float(np.mean([float(m[k]) for m in window])) for k in window[0]}
                if not all(math.isfinite(v) for v in values.values()):
                    raise NonFiniteError(f"training produced a non-finite loss at step {done} (loss {values['loss']}, "
                                         f"grad norm {values['grad_norm']}); lower --lr and resume from the last "
                                         f"checkpoint with --resume")
                now = time.monotonic()
                values.update(step=done, steps_per_s=len(window) / max(now - last_log, 1e-9))
                last_log, window = now, []
                append(values)
                bar.set_description(desc)
                bar.set_postfix(postfix(values))
                if time.monotonic() - last_save >= config.checkpoint_every_s:  # only checked-finite states
                    save()
                    last_save = time.monotonic()
            if config.eval_every and done % config.eval_every == 0 and done != last:
                run_eval(done)
            bar.update(1)
        bar.close()
        if checkpoints.latest_step() != int(state.step):
            save()
        run_eval(int(state.step))
    finally:
        bar.close()
        checkpoints.close()
    return state.params, records
