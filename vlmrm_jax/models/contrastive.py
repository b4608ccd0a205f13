"""CLIP's contrastive objective, generalised to multi-label captions (for in-domain fine-tuning, Di Palo et al. 2023).

CLIP (Radford et al. 2021) trains with a symmetric InfoNCE loss over a batch of one-to-one image-caption pairs and a
learned temperature. Auto-labelled frames are multi-label (a frame can be "standing" and "arms raised" at once, and
the baseline caption describes every frame), so here each image is scored against a set of K candidate captions with
a binary label matrix, and each direction's cross-entropy uses a target distribution spread uniformly over the
positives. With one positive per row and column (labels = identity) it is exactly CLIP's loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

#: CLIP clips its learned log temperature at log(100).
MAX_LOGIT_SCALE = 4.605170185988092


def multilabel_clip_loss(image_embeddings: jax.Array, text_embeddings: jax.Array, labels: jax.Array,
                         logit_scale: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Symmetric multi-positive InfoNCE.

    Args:
        image_embeddings: float [B, D], unit-normalised.
        text_embeddings: float [K, D], unit-normalised (one per candidate caption).
        labels: bool or {0, 1} [B, K]; ``labels[i, k]`` is true when caption k describes image i.
        logit_scale: float [], log of the inverse temperature (clipped at log 100 as in CLIP).

    Returns:
        (loss float32 [], metrics) where metrics hold ``loss_image_to_text``, ``loss_text_to_image``,
        ``temperature`` and ``accuracy`` (fraction of images whose top caption is a positive). Images without a
        positive caption and captions without a positive image in the batch do not contribute to their direction.
    """
    labels = labels.astype(jnp.float32)
    scale = jnp.exp(jnp.minimum(logit_scale, MAX_LOGIT_SCALE))
    logits = scale * image_embeddings.astype(jnp.float32) @ text_embeddings.astype(jnp.float32).T  # [B, K]

    def direction(logits, labels):
        count = labels.sum(axis=1)
        targets = labels / jnp.maximum(count, 1.0)[:, None]
        per_row = -jnp.sum(targets * jax.nn.log_softmax(logits, axis=1), axis=1)
        present = (count > 0).astype(jnp.float32)
        return jnp.sum(per_row * present) / jnp.maximum(present.sum(), 1.0)

    loss_i2t = direction(logits, labels)
    loss_t2i = direction(logits.T, labels.T)
    top = jnp.argmax(logits, axis=1)
    accuracy = jnp.mean(jnp.take_along_axis(labels, top[:, None], axis=1))
    loss = 0.5 * (loss_i2t + loss_t2i)
    return loss, {"loss": loss, "loss_image_to_text": loss_i2t, "loss_text_to_image": loss_t2i,
                  "temperature": 1.0 / scale, "accuracy": accuracy}
