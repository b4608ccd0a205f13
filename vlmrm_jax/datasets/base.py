"""The contract of a caption source: an environment-specific sampler of rendered, auto-labelled frames.

A source (one per environment family: :mod:`vlmrm_jax.envs.humanoid.captions`, :mod:`vlmrm_jax.envs.classic.captions`) samples
diverse states, renders them with the environment's own renderer (the frames PPO's reward model sees) and labels
them with ground-truth concepts (:class:`~vlmrm_jax.datasets.captions.CaptionSet`). Other environments join by
implementing :class:`CaptionSource` and registering a constructor in :data:`vlmrm_jax.envs.SOURCES`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from vlmrm_jax.datasets.captions import CaptionSet


class FrameBatch(NamedTuple):
    """A chunk of captioned frames.

    Attributes:
        images: uint8 [n, H, W, 3], rendered RGB frames.
        labels: bool [n, C], ``labels[i, c]``: concept c of the source's :class:`CaptionSet` holds in frame i.
        states: float32 [n, S], the state each frame shows (see the source's ``state_names``), so that labels can
            be recomputed and landscapes plotted without rendering again.
        modes: int32 [n], which sampling mode produced each frame (index into the source's ``modes``).
    """

    images: np.ndarray
    labels: np.ndarray
    states: np.ndarray
    modes: np.ndarray


@runtime_checkable
class CaptionSource(Protocol):
    """What a dataset generator needs from an environment.

    Attributes:
        env: the environment name (a key of :data:`vlmrm_jax.envs.SOURCES`).
        captions: the concepts and their phrasings; ``FrameBatch.labels`` columns follow ``captions.concepts``.
        image_size: rendered frames are ``image_size`` x ``image_size`` pixels.
        state_names: names of the S columns of ``FrameBatch.states``.
        modes: names of the sampling modes (``FrameBatch.modes`` indexes them).
        config: JSON-serialisable settings that, with the seed, reproduce the frames (saved in the manifest).
    """

    env: str
    captions: CaptionSet
    image_size: int
    state_names: tuple[str, ...]
    modes: tuple[str, ...]

    @property
    def config(self) -> dict: ...

    def generate(self, num_frames: int, seed: int, chunk_size: int = 256) -> Iterator[FrameBatch]:
        """Yields ``num_frames`` frames in chunks of at most ``chunk_size``; the same ``seed`` gives the same frames."""
        ...
