"""Auto-labelled in-domain image-caption datasets for training CLIP on an environment's frames (Di Palo et al. 2023).

- :class:`~vlmrm_jax.datasets.base.CaptionSource`: the per-environment contract (sample states, render them with
  the env's renderer, label them with ground-truth concepts); each env family implements one (its ``captions``
  module), found by name with :func:`vlmrm_jax.envs.make_source`.
- :class:`~vlmrm_jax.datasets.captions.CaptionSet`: concepts, their phrasings, the paper's goal and baseline prompts;
  :class:`~vlmrm_jax.datasets.base.ConceptSubset`: a source labelled with only some of its concepts.
- :func:`write_dataset` / :func:`load_dataset`: the on-disk format (atomic, checksummed).
"""

from __future__ import annotations

from vlmrm_jax.datasets.base import CaptionSource, ConceptSubset, FrameBatch
from vlmrm_jax.datasets.captions import CaptionSet, Concept, normalise_caption, unknown_prompts
from vlmrm_jax.datasets.store import CaptionedFrames, load_dataset, write_dataset


__all__ = ["CaptionSet", "CaptionSource", "CaptionedFrames", "Concept", "ConceptSubset", "FrameBatch", "load_dataset",
           "normalise_caption", "unknown_prompts", "write_dataset"]
