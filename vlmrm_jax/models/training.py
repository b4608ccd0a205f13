"""Contrastive training of a CLIP on auto-labelled in-domain frames (Di Palo et al. 2023, section 4.2).

CLIP's objective (Radford et al. 2021): symmetric InfoNCE between image and caption embeddings with a learned
temperature (the model's own ``logit_scale`` parameter, clipped at log 100), here in its multi-label form
(:func:`~vlmrm_jax.models.contrastive.multilabel_clip_loss`): every step scores a batch of B frames against all K
captions of the vocabulary, and a frame's positives are all phrasings of all concepts that hold in it. AdamW with
linear warm-up and cosine decay, global-norm clipping and weight decay on matrices only (not on biases, layer-norm
gains or the temperature), as in CLIP; everything inside one jitted step. The same code trains a small CLIP from
scratch or fine-tunes any loaded one (e.g. ``openai/clip-vit-base-patch32``); only the learning rate differs.

:func:`fit` runs :func:`vlmrm_jax.fitting.fit_loop`: a progress bar, JSON-lines metrics, held-out evaluation and
orbax checkpoints that ``resume`` continues exactly (the batch of step t depends only on the seed and t).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from vlmrm_jax import fitting
from vlmrm_jax.datasets.store import CaptionedFrames
from vlmrm_jax.fitting import TrainState, batch_indices, init_state
from vlmrm_jax.models.clip import CLIP
from vlmrm_jax.models.contrastive import multilabel_clip_loss


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of contrastive training.

    Attributes:
        steps: optimiser steps.
        batch_size: frames per step (B); every step scores them against all K captions.
        learning_rate: peak learning rate (from scratch ~5e-4; fine-tuning a pretrained CLIP ~1e-5).
        warmup_steps: linear warm-up from 0 to ``learning_rate``; then cosine decay to 5% of it at ``steps``.
        weight_decay: AdamW decoupled weight decay on matrices (CLIP: 0.2; 0.1 here).
        max_grad_norm: global gradient norm clip.
        shift_pixels: augmentation: each frame is shifted by up to this many pixels in x and y (edge-padded).
        seed: data order and augmentation seed.
        eval_every: steps between held-out evaluations (0 = only at the end).
        log_every: steps between metric lines in ``metrics.jsonl``.
        checkpoint_every_s: seconds between checkpoints (one is always written at the end).
    """

    steps: int = 2000
    batch_size: int = 128
    learning_rate: float = 5e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    shift_pixels: int = 2
    seed: int = 0
    eval_every: int = 500
    log_every: int = 25
    checkpoint_every_s: float = 120.0

    def __post_init__(self):
        fitting.check_config(self, "5e-4 from scratch or 1e-5 to fine-tune a pretrained CLIP", ("shift_pixels",))


class TextBatch(NamedTuple):
    """Tokenised captions: ``input_ids`` and ``attention_mask``, int32 [K, L] (padded to the longest caption)."""

    input_ids: jax.Array
    attention_mask: jax.Array


def tokenize(clip: CLIP, texts: Sequence[str]) -> TextBatch:
    """Tokenises captions with the CLIP's tokenizer, truncated at its context length.

    Padding only to the longest caption gives the same embeddings as CLIP's full padding: the text tower is causal
    and pools at the end-of-text token.
    """
    tokens = clip.tokenizer(list(texts), padding="longest", max_length=clip.context_length, truncation=True,
                            return_tensors="np")
    return TextBatch(jnp.asarray(tokens["input_ids"], jnp.int32), jnp.asarray(tokens["attention_mask"], jnp.int32))


def text_features(clip: CLIP, params, text: TextBatch) -> jax.Array:
    """Unit text embeddings, float32 [K, D], with explicit (differentiable) weights ``params``."""
    features = clip.model.get_text_features(text.input_ids, text.attention_mask, params=params)
    return features / jnp.linalg.norm(features, axis=-1, keepdims=True)


def random_shift(key: jax.Array, images: jax.Array, pixels: int) -> jax.Array:
    """Shifts each image by a random offset in [-pixels, pixels] along y and x, filling with edge pixels.

    Args:
        key: PRNG key; images: float [B, H, W, C]; pixels: largest shift (0 = identity).

    Returns:
        float [B, H, W, C].
    """
    if pixels == 0:
        return images
    _, height, width, channels = images.shape
    padded = jnp.pad(images, ((0, 0), (pixels, pixels), (pixels, pixels), (0, 0)), mode="edge")
    offsets = jax.random.randint(key, (images.shape[0], 2), 0, 2 * pixels + 1)
    return jax.vmap(lambda image, o: jax.lax.dynamic_slice(image, (o[0], o[1], 0), (height, width, channels)))(
        padded, offsets)


def contrastive_loss(clip: CLIP, params, images: jax.Array, text: TextBatch,
                     labels: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The multi-label CLIP loss of frames against captions (see the module docstring).

    Args:
        clip: the model (architecture, preprocessing); params: the weights (differentiated).
        images: float [B, H, W, 3] in [0, 1].
        text: the K captions, tokenised.
        labels: bool [B, K]; ``labels[i, k]``: caption k describes frame i.

    Returns:
        (loss float32 [], metrics: loss, both directions, temperature, top-1 caption accuracy).
    """
    image_embeddings = clip.embed_images(params, images)
    return multilabel_clip_loss(image_embeddings, text_features(clip, params, text), labels, params["logit_scale"])


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """:func:`vlmrm_jax.fitting.make_optimizer` with CLIP's AdamW moments (beta2 0.98, eps 1e-6)."""
    return fitting.make_optimizer(config, b1=0.9, b2=0.98, eps=1e-6)


def make_train_step(clip: CLIP, optimizer: optax.GradientTransformation, text: TextBatch,
                    shift_pixels: int = 0) -> Callable[[TrainState, jax.Array, jax.Array, jax.Array],
                                                       tuple[TrainState, dict]]:
    """The jitted update ``step(state, images, labels, key) -> (state, metrics)``.

    Args:
        clip: the model (only its architecture is used; the weights are ``state.params``).
        optimizer: e.g. :func:`make_optimizer`.
        text: all K captions, tokenised (closed over: the same every step).
        shift_pixels: augmentation (see :func:`random_shift`).

    The step takes ``images`` uint8 [B, H, W, 3], ``labels`` bool [B, K], ``key`` a PRNG key, and returns metrics
    (float32 [] each): the loss terms of :func:`contrastive_loss` and the gradient's global norm ``grad_norm``.
    ``state`` is donated (its buffers are reused for the new state).
    """
    static = clip.replace(params=None)

    def loss(params, images: jax.Array, labels: jax.Array, key: jax.Array):
        images = random_shift(key, images.astype(jnp.float32) / 255.0, shift_pixels)
        return contrastive_loss(static, params, images, text, labels)

    return fitting.make_train_step(loss, optimizer)


def fit(clip: CLIP, train: CaptionedFrames, config: TrainConfig, out: str | Path, *,
        held_out: CaptionedFrames | None = None, resume: bool = False,
        evaluate: Callable[[Any, CaptionedFrames], dict] | None = None, stop_at: int | None = None,
        show_progress: bool = True, log: Callable[[str], None] = print) -> tuple[Any, list[dict]]:
    """Trains ``clip`` on ``train`` and returns the final weights.

    Writes into ``out``: ``checkpoints/`` (orbax: params, optimiser state, step; atomic) and ``metrics.jsonl`` (one
    JSON line every ``log_every`` steps: step, loss terms, temperature, accuracy, grad norm, steps/s; and the result
    of ``evaluate(params, held_out)`` every ``eval_every`` steps and at the end, keys prefixed ``eval/``).

    Args:
        clip: the model to train (its ``params`` are the starting weights).
        train: frames and labels (``train.captions`` gives the K captions).
        config: hyper-parameters.
        out: run directory (created).
        held_out: frames for evaluation (e.g. other seeds), or None.
        resume: continue from the latest checkpoint in ``out``.
        evaluate: ``(params, frames) -> dict of floats``; default: nothing.
        stop_at: stop (with a checkpoint) after this step although the schedule runs to ``config.steps``; a later
            ``resume`` continues exactly (for time-boxed sessions).
        show_progress: tqdm bar (steps, loss, accuracy, temperature, ETA).

    Returns:
        (params, metric records).

    Raises:
        CheckpointError: ``resume`` without a checkpoint, or a corrupt one.
        NonFiniteError: the loss became NaN or infinite (the last checkpoint is kept).
        VlmrmError: with ``resume``, a damaged line in ``metrics.jsonl`` (before its last: a torn last line is dropped).
    """
    text = tokenize(clip, train.captions.captions)
    labels = train.captions.caption_labels(train.labels)
    optimizer = make_optimizer(config)
    train_step = make_train_step(clip, optimizer, text, config.shift_pixels)
    key = jax.random.PRNGKey(config.seed)

    def batch(step: int) -> tuple:
        idx = batch_indices(len(train), config.batch_size, config.seed, step)
        return train.images[idx], labels[idx], jax.random.fold_in(key, step)

    run_eval = (lambda params: evaluate(params, held_out)) if evaluate is not None and held_out is not None else None
    return fitting.fit_loop(init_state(clip.params, optimizer), train_step, batch, config, out, resume=resume,
                            evaluate=run_eval, stop_at=stop_at, desc="contrastive training",
                            postfix=lambda v: dict(loss=f"{v['loss']:.3f}", acc=f"{v['accuracy']:.2f}",
                                                   temp=f"{v['temperature']:.3f}"),
                            show_progress=show_progress, log=log)
