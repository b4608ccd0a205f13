"""Flax CLIP for VLM rewards: loading by hub id, directory or shipped name, JAX preprocessing, text and image
embedding, and tiny offline models.

- :class:`CLIP` (:func:`load_clip`): load, :meth:`CLIP.embed_text` (once per run), :meth:`CLIP.embed_images`
  (jittable, preprocessing included).
- :func:`preprocess_images`: CLIP's resize, centre crop and normalisation in JAX.
- :func:`create_tiny_clip`, :func:`build_clip_tokenizer`: small random CLIPs and CLIP tokenizers built offline.
- :mod:`vlmrm_jax.models.registry`: shipped offline models by short name.
- In-domain training (Di Palo et al. 2023): :mod:`~vlmrm_jax.models.training` (contrastive loop),
  :mod:`~vlmrm_jax.models.evaluation` (per-prompt AUROC of the VLM-RM reward, retrieval),
  :mod:`~vlmrm_jax.models.export` (Hugging Face directory), :mod:`~vlmrm_jax.models.vocabulary` (an in-domain
  model's captions and the warning for prompts outside them).
"""

from vlmrm_jax.models.clip import CLIP, DEFAULT_CLIP, load_clip
from vlmrm_jax.models.preprocess import CLIP_MEAN, CLIP_STD, preprocess_images
from vlmrm_jax.models.tiny import create_tiny_clip
from vlmrm_jax.models.tokenizer import build_clip_tokenizer

__all__ = ["CLIP", "CLIP_MEAN", "CLIP_STD", "DEFAULT_CLIP", "build_clip_tokenizer", "create_tiny_clip", "load_clip",
           "preprocess_images"]
