"""Teacher-forced training of a :class:`~vlmrm_jax.planner.t5.T5` on (input text, target text) pairs.

The loss is T5's (Raffel et al. 2020): cross-entropy of each target token (end-of-sequence token included) given
the input and the previous target tokens, averaged over the target tokens of the batch. AdamW with linear warm-up
and cosine decay, global-norm clipping, weight decay on matrices only; one jitted step.

:func:`fit` runs :func:`vlmrm_jax.fitting.fit_loop`: a tqdm bar, JSON-lines metrics, optional evaluation, and atomic
orbax checkpoints that ``resume`` continues exactly (the batch of step t depends only on the seed and t).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vlmrm_jax import fitting
from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.fitting import batch_indices, init_state
from vlmrm_jax.planner.t5 import T5


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
        fitting.check_config(self, "2e-3")


class Pairs(NamedTuple):
    """Tokenised pairs, numpy int32: ``input_ids``/``attention_mask`` [N, L] and ``labels`` [N, T] (the target
    tokens, end-of-sequence token included, then pad tokens)."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    labels: np.ndarray


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
    """:func:`vlmrm_jax.fitting.make_optimizer` with optax's AdamW moments."""
    return fitting.make_optimizer(config)


def make_train_step(model: T5, optimizer: optax.GradientTransformation):
    """The jitted update ``step(state, input_ids, attention_mask, labels) -> (state, metrics)`` (state donated);
    metrics: loss, token accuracy, gradient global norm (float32 [] each)."""
    return fitting.make_train_step(lambda params, *batch: loss_fn(model, params, *batch), optimizer)


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
        VlmrmError: with ``resume``, a damaged line in ``metrics.jsonl`` (before its last: a torn last line is dropped).
    """
    optimizer = make_optimizer(config)

    def batch(step: int) -> tuple:
        idx = batch_indices(len(train.input_ids), config.batch_size, config.seed, step)
        return train.input_ids[idx], train.attention_mask[idx], train.labels[idx]

    return fitting.fit_loop(init_state(params, optimizer), make_train_step(model, optimizer), batch, config, out,
                            resume=resume, evaluate=evaluate, desc="planner training",
                            postfix=lambda v: dict(loss=f"{v['loss']:.3f}", acc=f"{v['token_accuracy']:.3f}"),
                            show_progress=show_progress, log=log)
