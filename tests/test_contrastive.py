"""The multi-label CLIP loss against a direct NumPy computation and against CLIP's one-to-one InfoNCE."""

import jax.numpy as jnp
import numpy as np
import pytest

from vlmrm_jax.models.contrastive import multilabel_clip_loss


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _log_softmax(x, axis):
    x = x - x.max(axis=axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


def numpy_loss(img, txt, labels, logit_scale):
    logits = np.exp(logit_scale) * img @ txt.T
    rows = [-(labels[i] / labels[i].sum() * _log_softmax(logits, 1)[i]).sum()
            for i in range(len(img)) if labels[i].sum() > 0]
    cols = [-(labels[:, k] / labels[:, k].sum() * _log_softmax(logits.T, 1)[k]).sum()
            for k in range(len(txt)) if labels[:, k].sum() > 0]
    return 0.5 * (np.mean(rows) + np.mean(cols))


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    img = _unit(rng.normal(size=(6, 8))).astype(np.float32)
    txt = _unit(rng.normal(size=(4, 8))).astype(np.float32)
    labels = rng.random((6, 4)) < 0.4
    labels[:, 0] = True  # a baseline caption that describes every image
    labels[5] = False  # an image with no positive
    labels[:, 3] = False  # a caption with no positive
    return img, txt, labels


def test_multilabel_matches_numpy(batch):
    img, txt, labels = batch
    loss, metrics = multilabel_clip_loss(jnp.asarray(img), jnp.asarray(txt), jnp.asarray(labels), jnp.log(10.0))
    np.testing.assert_allclose(float(loss), numpy_loss(img, txt, labels.astype(float), np.log(10.0)), rtol=1e-5)
    assert float(metrics["temperature"]) == pytest.approx(0.1)


def test_identity_labels_is_clip_infonce():
    rng = np.random.default_rng(1)
    img, txt = _unit(rng.normal(size=(5, 8))), _unit(rng.normal(size=(5, 8)))
    logits = np.exp(2.0) * img @ txt.T
    clip = 0.5 * (-np.mean(np.diag(_log_softmax(logits, 1))) - np.mean(np.diag(_log_softmax(logits.T, 1))))
    loss, _ = multilabel_clip_loss(jnp.asarray(img), jnp.asarray(txt), jnp.eye(5, dtype=bool), jnp.asarray(2.0))
    np.testing.assert_allclose(float(loss), clip, rtol=1e-5)


def test_temperature_is_clipped_at_100(batch):
    img, txt, labels = batch
    _, metrics = multilabel_clip_loss(jnp.asarray(img), jnp.asarray(txt), jnp.asarray(labels), jnp.asarray(9.0))
    assert float(metrics["temperature"]) == pytest.approx(0.01)
