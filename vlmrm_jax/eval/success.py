"""Episode success from per-step ground truth: VLM-RM's criterion and its rate over episodes.

VLM-RM (Rocamonde et al. 2023, section 4.4) counts a humanoid episode as a success when the pose holds on at least
50% of its steps (:func:`episode_success`). The same rule serves any per-step criterion (a pose predicate, CartPole's
pole upright); tasks whose goal is reached once (MountainCar's flag) succeed when it is reached at any step
(:func:`reached_at_any_step`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vlmrm_jax.errors import VlmrmError


def _check_holds(holds: jax.Array, ndims: tuple[int, ...], shape_doc: str) -> None:
    if holds.ndim not in ndims or holds.shape[0] == 0:
        raise VlmrmError(f"holds has shape {tuple(holds.shape)}; pass bool {shape_doc} with T >= 1 steps")
    if holds.dtype != jnp.bool_:
        raise VlmrmError(f"holds has dtype {holds.dtype}; pass the bool output of a predicate")


def episode_success(holds: jax.Array, min_fraction: float = 0.5) -> jax.Array:
    """VLM-RM's humanoid success criterion (Rocamonde et al. 2023, section 4.4): an episode succeeds when the pose
    holds on at least ``min_fraction`` of its steps.

    Args:
        holds: bool [T] (one episode) or [T, B] (B episodes), whether the pose holds after each env step.
        min_fraction: Python float in (0, 1]; the paper's 0.5 by default.

    Returns:
        bool [] or [B].

    Raises:
        VlmrmError: on another rank, an empty episode, a non-bool ``holds`` or ``min_fraction`` outside (0, 1].
    """
    holds = jnp.asarray(holds)
    _check_holds(holds, (1, 2), "[T] or [T, B]")
    if not 0.0 < min_fraction <= 1.0:
        raise VlmrmError(f"min_fraction={min_fraction} is outside (0, 1]; pass a fraction of the episode such as 0.5")
    return jnp.mean(holds, axis=0, dtype=jnp.float32) >= min_fraction


def success_rate(holds: jax.Array, min_fraction: float = 0.5) -> jax.Array:
    """Fraction of episodes that succeed by :func:`episode_success`.

    Args:
        holds: bool [T, B], whether the pose holds after each of T env steps of B episodes.
        min_fraction: as for :func:`episode_success`.

    Returns:
        float32 [] in [0, 1].

    Raises:
        VlmrmError: as :func:`episode_success`, and if ``holds`` is not [T, B].
    """
    holds = jnp.asarray(holds)
    _check_holds(holds, (2,), "[T, B]")
    return jnp.mean(episode_success(holds, min_fraction), dtype=jnp.float32)


def reached_at_any_step(holds: jax.Array) -> jax.Array:
    """Success for goal-reaching tasks (MountainCar's flag): the criterion holds on at least one step.

    Args:
        holds: bool [T] or [T, B].

    Returns:
        bool [] or [B].

    Raises:
        VlmrmError: as :func:`episode_success`.
    """
    holds = jnp.asarray(holds)
    _check_holds(holds, (1, 2), "[T] or [T, B]")
    return jnp.any(holds, axis=0)
