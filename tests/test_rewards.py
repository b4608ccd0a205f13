"""The VLM-RM reward against a direct NumPy transcription of the authors' computation."""

import numpy as np
import pytest
import jax
import jax.numpy as jnp

from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.rewards import GoalBaselineReward, check_prompts, projection_matrix


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def numpy_reward(image_emb, goal_embs, baseline_embs, alpha):
    """Rocamonde et al. 2023, Definition 1, as in the authors' code (means of unit vectors, not re-normalised)."""
    s = _unit(image_emb.astype(np.float64))
    g = _unit(goal_embs.astype(np.float64)).mean(0)
    b = _unit(baseline_embs.astype(np.float64)).mean(0)
    d = g - b
    P = alpha * np.outer(d, d) / (d @ d) + (1 - alpha) * np.eye(len(d))
    y = (s - g) @ P
    return 1 - 0.5 * (y ** 2).sum(-1)


@pytest.fixture
def embeddings():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(7, 16)).astype(np.float32),  # images
            rng.normal(size=(3, 16)).astype(np.float32),  # goals
            rng.normal(size=(2, 16)).astype(np.float32))  # baselines


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 1.0])
def test_reward_matches_numpy(embeddings, alpha):
    images, goals, baselines = embeddings
    reward = GoalBaselineReward.from_embeddings(goals, baselines, alpha)
    got = jax.jit(reward.__call__)(jnp.asarray(images))
    np.testing.assert_allclose(np.asarray(got), numpy_reward(images, goals, baselines, alpha), rtol=1e-5, atol=1e-5)
    assert got.shape == (7,) and got.dtype == jnp.float32


def test_alpha_zero_one_goal_is_cosine_similarity(embeddings):
    images, goals, baselines = embeddings
    reward = GoalBaselineReward.from_embeddings(goals[:1], baselines, 0.0)
    cosine = _unit(images) @ _unit(goals[0])
    np.testing.assert_allclose(np.asarray(reward(jnp.asarray(images))), cosine, atol=1e-5)


def test_alpha_one_keeps_only_goal_baseline_direction(embeddings):
    images, goals, baselines = embeddings
    reward = GoalBaselineReward.from_embeddings(goals, baselines, 1.0)
    g, b = _unit(goals).mean(0), _unit(baselines).mean(0)
    d = (g - b) / np.linalg.norm(g - b)
    s = _unit(images)
    # Only the component of s - g along the unit goal-baseline direction d counts.
    np.testing.assert_allclose(np.asarray(reward(jnp.asarray(s))), 1 - 0.5 * ((s - g) @ d) ** 2, atol=1e-5)


def test_projection_matrix_is_projection_at_alpha_one():
    g, b = jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 1.0, 0.0])
    P = projection_matrix(g, b, 1.0)
    np.testing.assert_allclose(np.asarray(P @ P), np.asarray(P), atol=1e-6)
    np.testing.assert_allclose(np.asarray(projection_matrix(g, b, 0.0)), np.eye(3))


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), "x"])
def test_alpha_outside_unit_interval_is_rejected(embeddings, alpha):
    _, goals, baselines = embeddings
    with pytest.raises(VlmrmError, match="alpha"):
        GoalBaselineReward.from_embeddings(goals, baselines, alpha)


def test_identical_goal_and_baseline_rejected_for_positive_alpha(embeddings):
    _, goals, _ = embeddings
    with pytest.raises(VlmrmError, match="identical"):
        GoalBaselineReward.from_embeddings(goals, goals, 0.5)


@pytest.mark.parametrize("prompts", [[], [""], ["   "], ["ok", "\t\n"]])
def test_empty_prompts_rejected(prompts):
    with pytest.raises(VlmrmError):
        check_prompts(prompts)
