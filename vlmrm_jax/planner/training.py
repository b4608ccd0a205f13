"""Teacher-forced training of a :class:`~vlmrm_jax.planner.t5.T5` on (input text, target text) pairs.

The loss is T5's (Raffel et al. 2020): cross-entropy of each target token (end-of-sequence token included) given
the input and the previous target tokens, averaged over the target tokens of the batch. AdamW with linear warm-up
and cosine decay, global-norm clipping, weight decay on matrices only; one jitted step.

:func:`fit` runs the loop with a tqdm bar, JSON-lines metrics, optional evaluation, and atomic orbax checkpoints
that ``resume`` continues exactly (the batch of step t depends only on the seed and t).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from vlmrm_jax.errors import NonFiniteError, VlmrmError, check_positive_int
from vlmrm_jax.planner.t5 import T5
from vlmrm_jax.rl.checkpoint import Checkpoints

METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters.

    Attributes:
        steps: optimiser steps.
        batch_size: pairs per step.
        learning_rate: peak learning rate; warm-up from 0 over ``warmup_steps``, then cosine decay to 5% of it.
        warmup_steps: linear warm-up steps.
        weight_decay: AdamW decoupled weight decay on matrices.
        max_grad_norm: global gradient-norm clip.
        seed: data order seed.
        log_every: steps between metric lines.
        eval_every: steps between evaluations (0: only at the end).
        checkpoint_every_s: seconds between checkpoints (one is always written at the end).
    """

    steps: int = 1500
    batch_size: int = 64
    learning_rate: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 0
    log_every: int = 25
    eval_every: int = 500
    checkpoint_every_s: float = 120.0

    def __post_init__(self):
        for name in ("steps", "batch_size"):
            check_positive_int(name.replace("_", "-"), getattr(self, name))
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise VlmrmError(f"lr={self.learning_rate!r} must be a positive number, e.g. 2e-3")
        for name in ("warmup_steps", "log_every", "eval_every"):
            if getattr(self, name) < 0:
                raise VlmrmError(f"{name.replace('_', '-')}={getattr(self, name)!r} must be >= 0")


class Pairs(NamedTuple):
    """Tokenised pairs, numpy int32: ``input_ids``/``attention_mask`` [N, L] and ``labels`` [N, T] (the target
    tokens, end-of-sequence token included, then pad tokens)."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    labels: np.ndarray


class TrainState(struct.PyTreeNode):
    """``step`` (int32 []), ``params`` and ``opt_state``."""

    step: jax.Array
    params: Any
    opt_state: Any


def tokenize_pairs(tokenizer, inputs: Sequence[str], targets: Sequence[str], max_input_tokens: int,
                   max_target_tokens: int) -> Pairs:
    """Tokenises and pads pairs to fixed lengths L and T.

    Raises:
        VlmrmError: if a text is longer than its limit (the message names it).
    """
    def encode(texts: Sequence[str], length: int, what: str) -> np.ndarray:
        out = np.full((len(texts), length), tokenizer.pad_token_id, np.int32)
        for row, (text, ids) in enumerate(zip(texts, tokenizer(list(texts))["input_ids"])):
            if len(ids) > length:
                raise VlmrmError(f"{what} {text!r} has {len(ids)} tokens, more than {length}; raise the limit")
            out[row, :len(ids)] = ids
        return out

    input_ids = encode(inputs, max_input_tokens, "input")
    labels = encode(targets, max_target_tokens, "target")
    return Pairs(input_ids, (input_ids != tokenizer.pad_token_id).astype(np.int32), labels)


def loss_fn(model: T5, params: Any, input_ids: jax.Array, attention_mask: jax.Array,
            labels: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean token cross-entropy of ``labels`` int32 [B, T] (pad positions ignored); metrics: loss, token accuracy."""
    arch = model.arch
    decoder_input_ids = jnp.concatenate(
        [jnp.full((labels.shape[0], 1), arch.decoder_start_token_id, labels.dtype), labels[:, :-1]], axis=1)
    logits = model.apply({"params": params}, input_ids, attention_mask, decoder_input_ids)
    # A target ends at its first end-of-sequence token; the pads after it are not predicted.
    is_target = jnp.cumsum(labels == arch.eos_token_id, axis=1) - (labels == arch.eos_token_id) == 0
    weights = is_target.astype(jnp.float32)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    loss = jnp.sum(losses * weights) / jnp.sum(weights)
    accuracy = jnp.sum((jnp.argmax(logits, -1) == labels) * weights) / jnp.sum(weights)
    return loss, {"loss": loss, "token_accuracy": accuracy}


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """AdamW with warm-up + cosine decay, global-norm clipping, weight decay on parameters with >= 2 dimensions."""
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, max(config.warmup_steps, 1),
                                                  max(config.steps, config.warmup_steps + 1),
                                                  end_value=0.05 * config.learning_rate)
    decay_mask = lambda params: jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)  # noqa: E731
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                       optax.adamw(schedule, weight_decay=config.weight_decay, mask=decay_mask))


def make_train_step(model: T5, optimizer: optax.GradientTransformation):
    """The jitted update ``step(state, input_ids, attention_mask, labels) -> (state, metrics)`` (state donated);
    metrics: loss, token accuracy, gradient global norm (float32 [] each)."""

    def step(state: TrainState, input_ids, attention_mask, labels):
        grad_fn = jax.value_and_grad(lambda p: loss_fn(model, p, input_ids, attention_mask, labels), has_aux=True)
        (_, metrics), grads = grad_fn(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return (TrainState(step=state.step + 1, params=params, opt_state=opt_state),
                dict(metrics, grad_norm=optax.global_norm(grads)))

    return jax.jit(step, donate_argnums=0)


def batch_indices(num_pairs: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """The pairs of step ``step``, a function of (seed, step) alone, so a resumed run sees the same batches."""
    return np.random.default_rng([seed, step]).choice(num_pairs, size=batch_size, replace=batch_size > num_pairs)


def _read_metrics(path: Path, up_to_step: int) -> list[dict]:
    records = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill
                continue
            if record.get("step", 0) <= up_to_step:
                records.append(record)
    return records


def fit(model: T5, params: Any, train: Pairs, config: TrainConfig, out: str | Path, *, resume: bool = False,
        evaluate: Callable[[Any], dict] | None = None, show_progress: bool = True,
        log: Callable[[str], None] = print) -> tuple[Any, list[dict]]:
    """Trains ``params`` on ``train`` and returns the final weights and the metric records.

    Writes into ``out``: ``checkpoints/`` (orbax; params, optimiser state, step) and ``metrics.jsonl`` (a line every
    ``log_every`` steps: step, loss, token accuracy, grad norm, steps/s; and ``evaluate(params)`` every
    ``eval_every`` steps and at the end, keys prefixed ``eval/``).

    Raises:
        CheckpointError: ``resume`` without a (readable) checkpoint.
        NonFiniteError: the loss became NaN or infinite (the last checkpoint is kept).
    """
    from tqdm.auto import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    optimizer = make_optimizer(config)
    train_step = make_train_step(model, optimizer)
    checkpoints = Checkpoints(out / CHECKPOINT_DIR, max_to_keep=2)
    params = jax.tree.map(jnp.array, params)  # the step donates its state; the caller's weights must survive
    state = jax.device_put(TrainState(step=jnp.zeros((), jnp.int32), params=params,
                                      opt_state=optimizer.init(params)), jax.local_devices()[0])
    if resume:
        state, _ = checkpoints.restore(state)
        log(f"resumed from step {int(state.step)} in {out / CHECKPOINT_DIR}")
    start = int(state.step)
    metrics_path = out / METRICS_FILE
    records = _read_metrics(metrics_path, start) if resume else []
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

    bar = tqdm(total=config.steps, initial=start, disable=not show_progress, desc="planner training (compiling)",
               unit="step", dynamic_ncols=True)
    last_save, last_log, window = time.monotonic(), time.monotonic(), []
    try:
        for step in range(start, config.steps):
            idx = batch_indices(len(train.input_ids), config.batch_size, config.seed, step)
            state, metrics = train_step(state, train.input_ids[idx], train.attention_mask[idx], train.labels[idx])
            window.append(metrics)
            done = step + 1
            if done % max(config.log_every, 1) == 0 or done == config.steps:
                values = {k: float(np.mean([float(m[k]) for m in window])) for k in window[0]}
                if not all(math.isfinite(v) for v in values.values()):
                    raise NonFiniteError(f"training produced a non-finite loss at step {done} (loss {values['loss']}, "
                                         f"grad norm {values['grad_norm']}); lower --lr and resume from the last "
                                         f"checkpoint with --resume")
                now = time.monotonic()
                values.update(step=done, steps_per_s=len(window) / max(now - last_log, 1e-9))
                last_log, window = now, []
                append(values)
                bar.set_description("planner training")
                bar.set_postfix(loss=f"{values['loss']:.3f}", acc=f"{values['token_accuracy']:.3f}")
                if time.monotonic() - last_save >= config.checkpoint_every_s:  # only checked-finite states
                    save()
                    last_save = time.monotonic()
            if config.eval_every and done % config.eval_every == 0 and done != config.steps:
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
