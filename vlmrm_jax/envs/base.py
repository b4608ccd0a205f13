"""The contract between an environment family and the generic machinery (pipeline, datasets, landscapes, agents).

An environment is a ``brax.envs.base.Env`` (``reset(rng) -> State``, ``step(state, action) -> State``,
``observation_size``, ``action_size``) that also implements :class:`VLMEnv`: how to render one state, which
ground-truth values to log per step, and which of them decides success. The VLM reward itself is added by a
wrapper (:mod:`vlmrm_jax.envs.wrappers`), never written into the env.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence, runtime_checkable

import jax
from brax.envs.base import State


@runtime_checkable
class VLMEnv(Protocol):
    """What :mod:`vlmrm_jax.pipeline` needs from an environment beyond brax's ``Env``."""

    def make_render_fn(self, width: int, height: int, *, shadows: bool) -> Callable[[State], jax.Array]:
        """A jittable renderer of ONE (unbatched) state: ``State -> float32 [height, width, 3]`` in [0, 1].

        Args:
            width, height: image size in pixels (positive).
            shadows: cast shadows where the renderer can (envs without shadows ignore it).

        Raises:
            VlmrmError: on a non-positive size.
        """
        ...

    def step_metrics_fn(self) -> Callable[[State], dict[str, jax.Array]]:
        """Ground-truth per-step values logged next to the VLM reward: ``State -> {name: float32 []}`` for ONE state
        (pose predicates, the true task criterion), 1.0 where a criterion holds."""
        ...

    def task_metric(self, prompts: Sequence[str]) -> str | None:
        """Which key of :meth:`step_metrics_fn` is the success criterion of the task the prompts ask for, or None
        when no ground truth exists for those prompts."""
        ...

    def episode_success(self, holds: jax.Array) -> jax.Array:
        """The episode-level success rule for that criterion: bool [T, B] (step, env) -> bool [B]."""
        ...


__all__ = ["VLMEnv"]
