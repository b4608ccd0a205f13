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


class ConceptSubset:
    """A caption source whose frames carry only some of its concepts' labels (and the baseline's).

    The frames, states and modes are exactly those of ``source`` for the same seed; only the label columns and the
    caption vocabulary shrink (:meth:`CaptionSet.subset`). Training CLIP on such a dataset asks it to tell the kept
    concepts apart and nothing else, e.g. MountainCar's goal from every other frame without the valley, hill and
    slope concepts (docs/classic_validation.md).

    Args:
        source: any :class:`CaptionSource`.
        keys: the concept keys to keep.

    Raises:
        VlmrmError: on an unknown or empty ``keys``.
    """

    def __init__(self, source: CaptionSource, keys: tuple[str, ...]):
        self.source = source
        self.captions, self._columns = source.captions.subset(tuple(keys))
        self.env, self.image_size = source.env, source.image_size
        self.state_names, self.modes = source.state_names, source.modes

    @property
    def config(self) -> dict:
        """The source's settings and the kept concepts (with the seed they reproduce the dataset)."""
        return {**self.source.config, "concepts": list(self.captions.keys)}

    def generate(self, num_frames: int, seed: int, chunk_size: int = 256) -> Iterator[FrameBatch]:
        """``source.generate(num_frames, seed, chunk_size)`` with the labels of the kept concepts only."""
        for batch in self.source.generate(num_frames, seed, chunk_size):
            yield batch._replace(labels=np.asarray(batch.labels)[:, self._columns])
