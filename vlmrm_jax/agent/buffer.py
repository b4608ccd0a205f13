"""The on-device buffer of qualifying episodes (collect & infer's store of successes), over flashbax.

flashbax's item buffer (a pure ``init / add / sample`` triple over a pytree state, jittable) holds whole episodes:
each item is one episode padded to ``episode_length`` steps with a bool ``mask`` of the steps that count. flashbax
adds every item it is given, so :meth:`EpisodeBuffer.add` scans over the collected episodes and adds, under
``lax.cond``, only those the caller keeps (the paper's rule: rewarded, or a subgoal detected); the others never
take a slot. When full, the oldest episodes are overwritten (a ring).
"""

from __future__ import annotations

from typing import Any

import flashbax as fbx
import jax
import jax.numpy as jnp

from vlmrm_jax.errors import VlmrmError, check_positive_int

BufferState = Any  # flashbax.buffers.trajectory_buffer.TrajectoryBufferState


class EpisodeBuffer:
    """A ring of up to ``capacity`` episodes; samples ``batch_size`` of them uniformly (with replacement).

    Args:
        capacity: episodes held.
        batch_size: episodes per sample.

    Raises:
        VlmrmError: if a size is not a positive integer or ``batch_size > capacity``.
    """

    def __init__(self, capacity: int, batch_size: int):
        for name, value in (("buffer capacity", capacity), ("BC batch size", batch_size)):
            check_positive_int(name, value)
        if batch_size > capacity:
            raise VlmrmError(f"BC batch size {batch_size} exceeds the buffer capacity {capacity}; lower it")
        self.capacity = capacity
        self.batch_size = batch_size
        self._buffer = fbx.make_item_buffer(max_length=capacity, min_length=1, sample_batch_size=batch_size)

    def init(self, episode: Any) -> BufferState:
        """An empty buffer for episodes shaped like ``episode`` (one episode's pytree, arrays [T, ...])."""
        return self._buffer.init(episode)

    def add(self, state: BufferState, episodes: Any, keep: jax.Array) -> BufferState:
        """Adds the episodes where ``keep`` is true, in order.

        Args:
            state: the buffer.
            episodes: pytree of arrays [N, T, ...], N episodes.
            keep: bool [N].
        """
        def add_one(state, item):
            episode, k = item
            return jax.lax.cond(k, self._buffer.add, lambda s, _: s, state, episode), None

        state, _ = jax.lax.scan(add_one, state, (episodes, keep))
        return state

    def sample(self, state: BufferState, key: jax.Array) -> Any:
        """``batch_size`` stored episodes, pytree of arrays [batch_size, T, ...] (meaningless when empty: check
        :meth:`size`)."""
        return self._buffer.sample(state, key).experience

    def size(self, state: BufferState) -> jax.Array:
        """int32 []: episodes held."""
        return jnp.where(state.is_full, self.capacity, state.current_index).astype(jnp.int32)
