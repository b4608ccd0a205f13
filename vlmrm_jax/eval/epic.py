"""EPIC distance between rewards (Gleave et al. 2020, "Quantifying Differences in Reward Functions", ICLR 2021).

EPIC compares two rewards R_A, R_B up to potential shaping and positive rescaling. Each reward is first
canonicalised (Gleave et al., section 4, the canonically shaped reward):

    C(R)(s, a, s') = R(s, a, s') + gamma E[R(s', A, S')] - E[R(s, A, S')] - gamma E[R(S, A, S')],

with S, S' ~ D_S and A ~ D_A independent, which removes any shaping term ``gamma Phi(s') - Phi(s)`` and any constant.
The distance is then the Pearson distance of the canonical rewards over a coverage distribution D of transitions
(the EPIC pseudometric):

    D_EPIC(R_A, R_B) = sqrt((1 - rho(C(R_A), C(R_B))) / 2)   in [0, 1].

0 means equivalent rewards (same optimal policies in every environment with these state and action spaces);
uncorrelated rewards give sqrt(1/2) ~ 0.707. VLM-RM (Rocamonde et al. 2023, section 4.2) reports EPIC between the
CLIP reward and the ground-truth reward.

Sample-based estimate (as Gleave et al. do for large or continuous spaces): the expectations run over ``M``
potential-shaping samples ``(S_j, A_j)``: E[R(x, A, S')] is the mean of R(x, A_j, S_j) over j, and E[R(S, A, S')]
the mean of R(S_k, A_j, S_j) over all k, j. Because the same state samples stand for S and S', potential shaping
cancels exactly, not only in expectation.

Two entry points: :func:`epic_distance` takes reward functions (jittable, vectorised ``R(s, a, s') -> [B]``) and
sample batches; :func:`epic_distance_from_tensors` takes the rewards already evaluated (:class:`RewardTensors`), e.g.
CLIP rewards computed in batches elsewhere.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from vlmrm_jax.errors import VlmrmError

#: ``R(state [B, ...], action [B, ...], next_state [B, ...]) -> float32 [B]``, jittable.
RewardFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


class Transitions(NamedTuple):
    """A batch of N transitions (s, a, s') from the coverage distribution D.

    Attributes:
        state: [N, ...] states s.
        action: [N, ...] actions a.
        next_state: [N, ...] next states s' (same trailing shape as ``state``).
    """

    state: jax.Array
    action: jax.Array
    next_state: jax.Array


class ShapingSamples(NamedTuple):
    """M potential-shaping samples: states from D_S and actions from D_A, drawn independently.

    Attributes:
        state: [M, ...] samples of S (and S').
        action: [M, ...] samples of A.
    """

    state: jax.Array
    action: jax.Array


class RewardTensors(NamedTuple):
    """One reward evaluated at everything canonicalisation needs (N transitions, M shaping samples).

    Attributes:
        reward: float32 [N], R(s_i, a_i, s'_i).
        from_next_state: float32 [N, M], R(s'_i, A_j, S_j).
        from_state: float32 [N, M], R(s_i, A_j, S_j).
        from_samples: float32 [K, M], R(S_k, A_j, S_j) (usually K = M, all shaping states).
    """

    reward: jax.Array
    from_next_state: jax.Array
    from_state: jax.Array
    from_samples: jax.Array


def _check_gamma(gamma: float) -> None:
    if not 0.0 <= float(gamma) <= 1.0:
        raise VlmrmError(f"gamma={gamma!r} must be a discount factor in [0, 1]")


def _leading(x) -> int:
    return jnp.shape(x)[0] if jnp.ndim(x) else 0


def _check_batches(transitions: Transitions, samples: ShapingSamples) -> None:
    n = {name: _leading(x) for name, x in transitions._asdict().items()}
    if len(set(n.values())) != 1 or n["state"] < 2:
        raise VlmrmError(f"transitions must hold the same number N >= 2 of states, actions and next states; got "
                         f"{n}")
    if jnp.shape(transitions.state) != jnp.shape(transitions.next_state):
        raise VlmrmError(f"transitions.state {jnp.shape(transitions.state)} and next_state "
                         f"{jnp.shape(transitions.next_state)} must have the same shape")
    m = {name: _leading(x) for name, x in samples._asdict().items()}
    if len(set(m.values())) != 1 or m["state"] < 1:
        raise VlmrmError(f"shaping samples must hold the same number M >= 1 of states and actions; got {m}")
    if jnp.shape(samples.state)[1:] != jnp.shape(transitions.state)[1:]:
        raise VlmrmError(f"shaping states {jnp.shape(samples.state)[1:]} and transition states "
                         f"{jnp.shape(transitions.state)[1:]} must have the same shape per state")


def _check_tensors(t: RewardTensors) -> None:
    shapes = {name: jnp.shape(x) for name, x in t._asdict().items()}
    n = shapes["reward"][0] if len(shapes["reward"]) == 1 else None
    m = shapes["from_samples"][-1] if len(shapes["from_samples"]) == 2 else None
    ok = (n is not None and n >= 2 and m is not None and shapes["from_next_state"] == (n, m)
          and shapes["from_state"] == (n, m))
    if not ok:
        raise VlmrmError(f"reward tensors must be reward [N >= 2], from_next_state [N, M], from_state [N, M], "
                         f"from_samples [K, M]; got {shapes}")


def evaluate_reward(reward_fn: RewardFn, transitions: Transitions, samples: ShapingSamples, *,
                    batch_size: int | None = None) -> RewardTensors:
    """Evaluates a reward function at the N transitions and on the N x M and M x M grids canonicalisation needs.

    Args:
        reward_fn: vectorised ``R(s [B, ...], a [B, ...], s' [B, ...]) -> [B]``, jittable.
        transitions: N coverage transitions.
        samples: M shaping samples (S_j, A_j).
        batch_size: rows of a grid evaluated at once (``jax.lax.map``); None = all at once (N x M states in memory).

    Returns:
        :class:`RewardTensors`, float32.

    Raises:
        VlmrmError: on mismatched batch sizes or state shapes.
    """
    _check_batches(transitions, samples)

    def against_samples(s: jax.Array) -> jax.Array:  # R(s, A_j, S_j) for j = 1..M
        tiled = jnp.broadcast_to(s, samples.state.shape)
        return reward_fn(tiled, samples.action, samples.state)

    def grid(states: jax.Array) -> jax.Array:
        return jax.lax.map(against_samples, states, batch_size=batch_size).astype(jnp.float32)

    reward = reward_fn(transitions.state, transitions.action, transitions.next_state).astype(jnp.float32)
    return RewardTensors(reward, grid(transitions.next_state), grid(transitions.state), grid(samples.state))


def canonicalize(tensors: RewardTensors, gamma: float) -> jax.Array:
    """EPIC's canonically shaped reward C(R) at the N transitions (Gleave et al., section 4).

    Args:
        tensors: the reward evaluated as in :func:`evaluate_reward`.
        gamma: discount factor in [0, 1] (a Python float, static under ``jit``).

    Returns:
        float32 [N], ``R(s,a,s') + gamma E[R(s',A,S')] - E[R(s,A,S')] - gamma E[R(S,A,S')]``.

    Raises:
        VlmrmError: on bad shapes or a gamma outside [0, 1].
    """
    _check_gamma(gamma)
    _check_tensors(tensors)
    return (tensors.reward + gamma * tensors.from_next_state.mean(axis=1) - tensors.from_state.mean(axis=1)
            - gamma * tensors.from_samples.mean())


def pearson_distance(x: jax.Array, y: jax.Array) -> jax.Array:
    """``sqrt((1 - rho) / 2)`` with rho the Pearson correlation of ``x`` and ``y`` (float [N] each); float32 [].

    NaN when either input is constant (rho undefined), e.g. a reward that is pure potential shaping.
    """
    x = x - x.mean()
    y = y - y.mean()
    rho = jnp.sum(x * y) / jnp.sqrt(jnp.sum(x * x) * jnp.sum(y * y))
    return jnp.sqrt(jnp.clip((1 - rho) / 2, 0.0, 1.0))


def epic_distance_from_tensors(tensors_a: RewardTensors, tensors_b: RewardTensors, gamma: float) -> jax.Array:
    """EPIC distance of two rewards evaluated at the same transitions and shaping samples; float32 [] in [0, 1].

    Raises:
        VlmrmError: on bad or mismatched shapes, or a gamma outside [0, 1].
    """
    shapes_a = [jnp.shape(x) for x in tensors_a]
    shapes_b = [jnp.shape(x) for x in tensors_b]
    if shapes_a != shapes_b:
        raise VlmrmError(f"the two rewards were evaluated on different batches ({shapes_a} vs {shapes_b}); "
                         f"evaluate both at the same transitions and shaping samples")
    return pearson_distance(canonicalize(tensors_a, gamma), canonicalize(tensors_b, gamma))


def epic_distance(reward_a: RewardFn, reward_b: RewardFn, transitions: Transitions, samples: ShapingSamples,
                  gamma: float, *, batch_size: int | None = None) -> jax.Array:
    """EPIC distance between two reward functions (Gleave et al. 2020), estimated from samples.

    Args:
        reward_a, reward_b: vectorised ``R(s [B, ...], a [B, ...], s' [B, ...]) -> [B]``, jittable.
        transitions: N >= 2 transitions from the coverage distribution D.
        samples: M shaping samples of D_S and D_A.
        gamma: discount factor in [0, 1] of the canonicalisation.
        batch_size: see :func:`evaluate_reward`.

    Returns:
        float32 [] in [0, 1]: 0 for rewards equal up to shaping and positive scaling, ~0.707 for uncorrelated ones;
        NaN when a canonical reward is constant.

    Raises:
        VlmrmError: on mismatched batches or a gamma outside [0, 1].
    """
    _check_gamma(gamma)
    return epic_distance_from_tensors(evaluate_reward(reward_a, transitions, samples, batch_size=batch_size),
                                      evaluate_reward(reward_b, transitions, samples, batch_size=batch_size), gamma)
