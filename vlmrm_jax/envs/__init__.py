"""Environment families and the registries that map a name to each family's parts.

One folder per family, owning everything about its world (MuJoCo Playground's layout): the env, its scene, its
camera, ground-truth predicates, its caption source for in-domain CLIP training, its reward-landscape sweep.

- :mod:`~vlmrm_jax.envs.humanoid`: the MJX humanoid of VLM-RM;
- :mod:`~vlmrm_jax.envs.classic`: CartPole and MountainCar;
- :mod:`~vlmrm_jax.envs.stacking`: block stacking of Di Palo et al. 2023.

Every env is a ``brax.envs.base.Env`` implementing :class:`~vlmrm_jax.envs.base.VLMEnv` (``make_render_fn``,
``step_metrics_fn``, ``task_metric``, ``episode_success``). The registries import a family only when asked for it.
"""

from __future__ import annotations

from typing import Callable

from brax.envs.base import Env

from vlmrm_jax.envs.base import VLMEnv
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


#: Environment name -> constructor (keyword options: MountainCar's ``look``, stacking's ``task``).
ENVIRONMENTS: dict[str, Callable[..., Env]] = {"humanoid": _humanoid, "cartpole": _cartpole,
                                               "mountain_car": _mountain_car, "stacking": _stacking}


def _humanoid_source(**kwargs):
    from vlmrm_jax.envs.humanoid.captions import HumanoidSource

    return HumanoidSource(**kwargs)


def _cartpole_source(**kwargs):
    from vlmrm_jax.envs.classic.captions import CartPoleSource

    return CartPoleSource(**kwargs)


def _mountain_car_source(**kwargs):
    from vlmrm_jax.envs.classic.captions import MountainCarSource

    return MountainCarSource(**kwargs)


def _stacking_source(**kwargs):
    from vlmrm_jax.envs.stacking.captions import StackingSource

    return StackingSource(**kwargs)


#: Environment name -> constructor of its :class:`~vlmrm_jax.datasets.CaptionSource` (keyword arguments:
#: ``image_size`` and source settings).
SOURCES: dict[str, Callable] = {"humanoid": _humanoid_source, "cartpole": _cartpole_source,
                                "mountain_car": _mountain_car_source, "stacking": _stacking_source}


def _cartpole_landscape():
    from vlmrm_jax.envs.classic.landscape import CARTPOLE_LANDSCAPE

    return CARTPOLE_LANDSCAPE


def _mountain_car_landscape():
    from vlmrm_jax.envs.classic.landscape import MOUNTAIN_CAR_LANDSCAPE

    return MOUNTAIN_CAR_LANDSCAPE


#: Environment name -> its :class:`~vlmrm_jax.eval.landscape.LandscapeTask` (what to sweep, the true reward).
LANDSCAPES: dict[str, Callable] = {"cartpole": _cartpole_landscape, "mountain_car": _mountain_car_landscape}


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


def make_source(env: str, **kwargs):
    """The caption source (:class:`~vlmrm_jax.datasets.CaptionSource`) of environment ``env``.

    Raises:
        VlmrmError: if ``env`` has no caption source (the message lists those that have one).
    """
    if env not in SOURCES:
        raise VlmrmError(f"unknown environment {env!r} for in-domain captions; choose one of "
                         f"{', '.join(sorted(SOURCES))} (another environment needs its own CaptionSource)")
    return SOURCES[env](**kwargs)


def landscape_task(env: str):
    """The :class:`~vlmrm_jax.eval.landscape.LandscapeTask` of ``env``.

    Raises:
        VlmrmError: if ``env`` has no landscape (the message lists those that do).
    """
    if env not in LANDSCAPES:
        raise VlmrmError(f"no reward landscape for env {env!r}; choose one of {', '.join(LANDSCAPES)}")
    return LANDSCAPES[env]()


__all__ = ["ENVIRONMENTS", "LANDSCAPES", "SOURCES", "VLMEnv", "landscape_task", "make_env", "make_source"]
