"""Writes a (trained) CLIP as a Hugging Face Flax model directory that :meth:`vlmrm_jax.models.CLIP.load` reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import CLIPImageProcessor

from vlmrm_jax.atomic import atomic_directory
from vlmrm_jax.datasets.captions import CaptionSet
from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.models.clip import CLIP
from vlmrm_jax.models.vocabulary import write_model_captions

#: Training provenance (command, data, metrics) saved next to the weights.
TRAINING_FILE = "training.json"


def save_clip(clip: CLIP, params: Any, out: str | Path, *, captions: CaptionSet | None = None, env: str | None = None,
              training: dict | None = None, overwrite: bool = False) -> Path:
    """Saves ``clip``'s architecture, tokenizer and normalisation with the weights ``params`` into ``out``.

    Files: ``config.json`` + ``flax_model.msgpack`` (``FlaxCLIPModel.save_pretrained``, float32), the tokenizer files
    (``tokenizer.json``, ``vocab.json``, ``merges.txt``, ...), ``preprocessor_config.json`` (input size and the
    model's mean/std), and, for an in-domain model, ``captions.json`` (its caption vocabulary, see
    :mod:`vlmrm_jax.models.vocabulary`) and ``training.json`` (``training``). The directory is written under a
    temporary name and renamed into place.

    Args:
        clip: the model whose architecture, tokenizer and normalisation are saved.
        params: the weights to save (e.g. trained ones).
        out: target directory.
        captions, env: the caption vocabulary and environment the model was trained on, or None.
        training: JSON-serialisable provenance, or None.
        overwrite: replace an existing ``out``.

    Returns:
        ``out`` as a Path.

    Raises:
        VlmrmError: ``out`` exists and is not empty without ``overwrite``; ``captions`` without ``env``.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise VlmrmError(f"model directory {out} is not empty; choose another --out or remove it")
    if captions is not None and not env:
        raise VlmrmError("a caption vocabulary needs the env it describes; pass env=...")
    with atomic_directory(out) as tmp:
        clip.model.save_pretrained(tmp, params=params)
        clip.tokenizer.save_pretrained(tmp)
        size = clip.image_size
        CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                           image_mean=list(clip.image_mean), image_std=list(clip.image_std)).save_pretrained(tmp)
        if captions is not None:
            write_model_captions(tmp, captions, env)
        if training is not None:
            (tmp / TRAINING_FILE).write_text(json.dumps(training, indent=2, sort_keys=True))
    return out
