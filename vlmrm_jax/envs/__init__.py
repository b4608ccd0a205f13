"""Environments: a registry of names to constructors, and the VLM reward wrapper.

Each env is a ``brax.envs.base.Env`` with

* ``make_render_fn(width, height, *, shadows)``: a jittable ``State -> float32 [H, W, 3]`` renderer of ONE state;
* ``step_metrics_fn()``: ``State -> {name: float32 []}``, ground-truth per-step values (pose predicates, the true
  task criterion) logged next to the VLM reward;
* ``task_metric(prompts) -> str | None``: which of those values is the success criterion of the prompted task;
* ``episode_success(holds)``: bool [T, B] -> bool [B], the episode-level success rule for that criterion.
"""

from __future__ import annotations

from typing import Callable

from brax.envs.base import Env

from vlmrm_jax.errors import VlmrmError


def _humanoid(**kwargs) -> Env:
    from vlmrm_jax.envs.humanoid import Humanoid

    return Humanoid(**kwargs)


def _cartpole(**kwargs) -> Env:
    from vlmrm_jax.envs.classic import CartPole

    return CartPole(**kwargs)


def _mountain_car(**kwargs) -> Env:
    from vlmrm_jax.envs.classic import MountainCar

    return MountainCar(**kwargs)


def _stacking(**kwargs) -> Env:
    from vlmrm_jax.envs.stacking.env import Stacking

    return Stacking(**kwargs)


#: Environment name -> constructor (keyword options: MountainCar's ``look``).
ENVIRONMENTS: dict[str, Callable[..., Env]] = {"humanoid": _humanoid, "cartpole": _cartpole,
                                               "mountain_car": _mountain_car, "stacking": _stacking}


def make_env(name: str, **kwargs) -> Env:
    """Builds the environment registered as ``name`` with keyword options ``kwargs`` (e.g. ``look="flat"``).

    Raises:
        VlmrmError: if ``name`` is not registered (the message lists the known names), or on a bad option.
    """
    if name not in ENVIRONMENTS:
        raise VlmrmError(f"unknown environment {name!r}; choose one of {', '.join(sorted(ENVIRONMENTS))}")
    try:
        return ENVIRONMENTS[name](**kwargs)
    except TypeError as e:
        raise VlmrmError(f"bad option for environment {name!r}: {e}") from None


__all__ = ["ENVIRONMENTS", "make_env"]
