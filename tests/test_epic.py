"""EPIC distance: canonicalisation against a direct NumPy computation, and the invariances of Gleave et al."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.eval.epic import (RewardTensors, ShapingSamples, Transitions, canonicalize, epic_distance,
                                 epic_distance_from_tensors, evaluate_reward, pearson_distance)

GAMMA = 0.9


def table_reward(table):
    """A tabular reward R[s, a, s'] as a vectorised reward function of integer states and actions."""
    table = jnp.asarray(table, jnp.float32)
    return lambda s, a, s2: table[s, a, s2]


def all_transitions(num_states, num_actions):
    s, a, s2 = np.meshgrid(np.arange(num_states), np.arange(num_actions), np.arange(num_states), indexing="ij")
    return Transitions(jnp.asarray(s.ravel()), jnp.asarray(a.ravel()), jnp.asarray(s2.ravel()))


def all_samples(num_states, num_actions):
    """Every (S, A) pair once: uniform D_S and D_A, independent."""
    s, a = np.meshgrid(np.arange(num_states), np.arange(num_actions), indexing="ij")
    return ShapingSamples(jnp.asarray(s.ravel()), jnp.asarray(a.ravel()))


def test_canonicalisation_matches_numpy_on_a_discrete_example():
    num_states, num_actions = 5, 3
    table = np.random.default_rng(0).normal(size=(num_states, num_actions, num_states))
    # Direct computation with uniform D_S, D_A: E over A, S' of R[x, A, S'] is a mean over the last two axes.
    potential = table.mean(axis=(1, 2))  # E[R(x, A, S')] for each x
    expected = (table + GAMMA * potential[None, None, :] - potential[:, None, None] - GAMMA * table.mean())
    transitions = all_transitions(num_states, num_actions)
    tensors = evaluate_reward(table_reward(table), transitions, all_samples(num_states, num_actions))
    got = canonicalize(tensors, GAMMA)
    assert got.shape == (num_states * num_actions * num_states,) and got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), expected.ravel(), rtol=1e-5, atol=1e-5)


def test_evaluate_reward_batches_like_unbatched():
    table = np.random.default_rng(1).normal(size=(4, 2, 4))
    transitions, samples = all_transitions(4, 2), all_samples(4, 2)
    whole = evaluate_reward(table_reward(table), transitions, samples)
    chunked = evaluate_reward(table_reward(table), transitions, samples, batch_size=3)
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b))
    assert whole.from_next_state.shape == (32, 8) and whole.from_samples.shape == (8, 8)


def test_pearson_distance_matches_numpy():
    x, y = np.random.default_rng(2).normal(size=(2, 100))
    y = y + 0.5 * x
    rho = np.corrcoef(x, y)[0, 1]
    np.testing.assert_allclose(float(pearson_distance(jnp.asarray(x), jnp.asarray(y))), np.sqrt((1 - rho) / 2),
                               rtol=1e-5)


# Continuous rewards over 4-D states and 1-D actions (CartPole-like), with random coverage and shaping samples.
W = jnp.asarray(np.random.default_rng(3).normal(size=(4, 8)), jnp.float32)


def smooth_reward(s, a, s2):
    return jnp.tanh(s2 @ W).sum(-1) + 0.3 * a[:, 0] * s[:, 0] - jnp.cos(s2[:, 2])


def potential(s):
    return 5.0 * jnp.sin(s @ jnp.asarray([1.0, -2.0, 0.5, 3.0]))


@pytest.fixture(scope="module")
def batches():
    k1, k2, k3, k4, k5 = jax.random.split(jax.random.PRNGKey(0), 5)
    n, m = 256, 64
    transitions = Transitions(jax.random.normal(k1, (n, 4)), jax.random.uniform(k2, (n, 1), minval=-1, maxval=1),
                              jax.random.normal(k3, (n, 4)))
    samples = ShapingSamples(jax.random.normal(k4, (m, 4)), jax.random.uniform(k5, (m, 1), minval=-1, maxval=1))
    return transitions, samples


def test_identical_rewards_are_at_distance_zero(batches):
    assert float(epic_distance(smooth_reward, smooth_reward, *batches, GAMMA)) < 1e-3


def test_positive_affine_transform_and_potential_shaping_are_at_distance_zero(batches):
    def shaped(s, a, s2):
        return 3.0 * smooth_reward(s, a, s2) + 7.0 + GAMMA * potential(s2) - potential(s)

    # The shaping term is large (std ~ 5) next to the reward's own spread: without canonicalisation they differ a lot.
    raw_a = smooth_reward(*batches[0])
    raw_b = shaped(*batches[0])
    assert float(pearson_distance(raw_a, raw_b)) > 0.3
    assert float(epic_distance(smooth_reward, shaped, *batches, GAMMA)) < 1e-2
    # The canonical rewards differ by exactly the positive scale.
    ca = canonicalize(evaluate_reward(smooth_reward, *batches), GAMMA)
    cb = canonicalize(evaluate_reward(shaped, *batches), GAMMA)
    np.testing.assert_allclose(np.asarray(cb), 3.0 * np.asarray(ca), rtol=1e-3, atol=1e-3)


def test_negated_reward_is_at_distance_one(batches):
    negated = lambda s, a, s2: -smooth_reward(s, a, s2)  # noqa: E731
    assert float(epic_distance(smooth_reward, negated, *batches, GAMMA)) > 0.999


def test_independent_random_rewards_are_at_distance_about_0707():
    num_states, num_actions = 20, 4
    tables = np.random.default_rng(4).normal(size=(2, num_states, num_actions, num_states))
    transitions, samples = all_transitions(num_states, num_actions), all_samples(num_states, num_actions)
    d = float(epic_distance(table_reward(tables[0]), table_reward(tables[1]), transitions, samples, GAMMA))
    assert abs(d - np.sqrt(0.5)) < 0.05


def test_distance_from_tensors_equals_distance_from_functions(batches):
    other = lambda s, a, s2: smooth_reward(s, a, s2) + jnp.sin(3 * s[:, 1])  # noqa: E731
    from_fns = epic_distance(smooth_reward, other, *batches, GAMMA)
    tensors = [evaluate_reward(f, *batches) for f in (smooth_reward, other)]
    from_tensors = jax.jit(epic_distance_from_tensors, static_argnums=2)(*tensors, GAMMA)
    assert 0.05 < float(from_fns) < 0.7
    np.testing.assert_allclose(float(from_tensors), float(from_fns), rtol=1e-6)


def test_bad_input_raises(batches):
    transitions, samples = batches
    with pytest.raises(VlmrmError, match="gamma"):
        epic_distance(smooth_reward, smooth_reward, transitions, samples, 1.5)
    with pytest.raises(VlmrmError, match="same number"):
        epic_distance(smooth_reward, smooth_reward, transitions._replace(action=transitions.action[:10]), samples,
                      GAMMA)
    with pytest.raises(VlmrmError, match="shape per state"):
        epic_distance(smooth_reward, smooth_reward, transitions, samples._replace(state=samples.state[:, :3]), GAMMA)
    tensors = evaluate_reward(smooth_reward, transitions, samples)
    with pytest.raises(VlmrmError, match="different batches"):
        epic_distance_from_tensors(tensors, tensors._replace(reward=tensors.reward[:10]), GAMMA)
    with pytest.raises(VlmrmError, match="reward tensors"):
        canonicalize(RewardTensors(tensors.reward, tensors.from_next_state[:, :3], tensors.from_state,
                                   tensors.from_samples), GAMMA)
