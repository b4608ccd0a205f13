"""Environments: a registry of names to constructors, and the VLM reward wrapper.

Each env is a ``brax.envs.base.Env`` with ``make_render_fn(width, height, shadows=...)`` returning a jittable
``State -> float32 [H, W, 3]`` renderer, and optionally ``step_metrics_fn()`` returning ``State -> dict`` of
ground-truth per-step values (e.g. pose predicates) logged next to the VLM reward.
"""

from __future__ import annotations

from typing import Callable

from brax.envs.base import Env

from vlmrm_jax.errors import VlmrmError


def _humanoid(**kwargs) -> Env:
    from vlmrm_jax.envs.humanoid import Humanoid

    return Humanoid(**kwargs)


#: Environment name -> constructor.
ENVIRONMENTS: dict[str, Callable[..., Env]] = {"humanoid": _humanoid}


def make_env(name: str, **kwargs) -> Env:
    """Builds the environment registered as ``name``.

    Raises:
        VlmrmError: if ``name`` is not registered (the message lists the known names).
    """
    if name not in ENVIRONMENTS:
        raise VlmrmError(f"unknown environment {name!r}; choose one of {', '.join(sorted(ENVIRONMENTS))}")
    return ENVIRONMENTS[name](**kwargs)


__all__ = ["ENVIRONMENTS", "make_env"]
