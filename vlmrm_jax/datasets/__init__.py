"""Auto-labelled in-domain image-caption datasets for training CLIP on an environment's frames (Di Palo et al. 2023).

- :class:`~vlmrm_jax.datasets.base.CaptionSource`: the per-environment contract (sample states, render them with
  the env's renderer, label them with ground-truth concepts); :data:`SOURCES` / :func:`make_source` by env name.
- :class:`~vlmrm_jax.datasets.captions.CaptionSet`: concepts, their phrasings, the paper's goal and baseline prompts.
- :func:`write_dataset` / :func:`load_dataset`: the on-disk format (atomic, checksummed).
"""

from __future__ import annotations

from typing import Callable

from vlmrm_jax.datasets.base import CaptionSource, FrameBatch
from vlmrm_jax.datasets.captions import CaptionSet, Concept, normalise_caption, unknown_prompts
from vlmrm_jax.datasets.store import CaptionedFrames, load_dataset, write_dataset
from vlmrm_jax.errors import VlmrmError


def _humanoid(**kwargs) -> CaptionSource:
    from vlmrm_jax.datasets.humanoid import HumanoidSource

    return HumanoidSource(**kwargs)


def _cartpole(**kwargs) -> CaptionSource:
    from vlmrm_jax.datasets.classic import CartPoleSource

    return CartPoleSource(**kwargs)


def _mountain_car(**kwargs) -> CaptionSource:
    from vlmrm_jax.datasets.classic import MountainCarSource

    return MountainCarSource(**kwargs)


#: Environment name -> caption source constructor (keyword arguments: ``image_size`` and source settings).
SOURCES: dict[str, Callable[..., CaptionSource]] = {
    "humanoid": _humanoid, "cartpole": _cartpole, "mountain_car": _mountain_car}


def make_source(env: str, **kwargs) -> CaptionSource:
    """The caption source of environment ``env``.

    Raises:
        VlmrmError: if ``env`` has no caption source (the message lists those that have one).
    """
    if env not in SOURCES:
        raise VlmrmError(f"unknown environment {env!r} for in-domain captions; choose one of "
                         f"{', '.join(sorted(SOURCES))} (another environment needs its own CaptionSource)")
    return SOURCES[env](**kwargs)


__all__ = ["SOURCES", "CaptionSet", "CaptionSource", "CaptionedFrames", "Concept", "FrameBatch", "load_dataset",
           "make_source", "normalise_caption", "unknown_prompts", "write_dataset"]
