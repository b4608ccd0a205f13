"""PPO assembled from brax's components: learning on a tiny env, resume equivalence, config errors."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.rl.ppo import PPO, PPOConfig

from toy_envs import make_point_env as make_env


CONFIG = PPOConfig(num_envs=16, unroll_length=8, batch_size=16, num_minibatches=2, num_updates_per_batch=4,
                   learning_rate=3e-3, entropy_cost=1e-3, discounting=0.9, episode_length=20,
                   policy_hidden_layer_sizes=(32,), value_hidden_layer_sizes=(32,))


@pytest.fixture(scope="module")
def ppo():
    return PPO(make_env(), CONFIG)


def test_ppo_learns_to_reach_origin(ppo):
    state = ppo.init(jax.random.PRNGKey(0))
    rewards = []
    for _ in range(40):
        state, metrics = ppo.iteration(state)
        rewards.append(float(metrics["reward_mean"]))
    assert int(state.env_steps) == 40 * CONFIG.env_steps_per_iteration
    assert all(np.isfinite(rewards))
    # A random policy sits near E|pos| ~ 0.8; the trained one goes to the origin.
    assert np.mean(rewards[-5:]) > np.mean(rewards[:3]) + 0.2, rewards


def test_iteration_is_deterministic_given_state(ppo):
    state = ppo.init(jax.random.PRNGKey(1))
    copy = jax.tree.map(jnp.copy, state)
    a, ma = ppo.iteration(state)
    b, mb = ppo.iteration(copy)
    assert float(ma["total_loss"]) == float(mb["total_loss"])
    jax.tree.map(np.testing.assert_array_equal, a.params, b.params)


@pytest.mark.parametrize("kwargs", [dict(num_envs=0), dict(num_envs=3, batch_size=4, num_minibatches=1),
                                    dict(learning_rate=-1.0), dict(unroll_length=2.5)])
def test_bad_config_rejected(kwargs):
    with pytest.raises(VlmrmError):
        PPOConfig(**kwargs)


@pytest.mark.parametrize("kwargs", [dict(action_noise_correlation=1.0), dict(action_noise_correlation=-0.1)])
def test_bad_noise_correlation_rejected(kwargs):
    with pytest.raises(VlmrmError, match="action_noise_correlation"):
        PPOConfig(**kwargs)


def _rollout_noise(ppo, state):
    """The exploration noise eps float64 [N*B, T, A] of one rollout (recovered from the actions and the policy's
    Gaussian), the new state's action_noise, and the rollout's log-probabilities against the distribution's own."""
    _, noise, data = jax.jit(ppo._rollout)(state, jax.random.PRNGKey(7))
    extras = data.extras["policy_extras"]
    distribution = ppo.networks.parametric_action_distribution
    gaussian = distribution.create_dist(extras["distribution_params"])
    eps = (np.asarray(extras["raw_action"], np.float64) - gaussian.loc) / gaussian.scale
    np.testing.assert_allclose(extras["log_prob"], distribution.log_prob(extras["distribution_params"],
                                                                         extras["raw_action"]), rtol=1e-5, atol=1e-6)
    return np.asarray(eps), np.asarray(noise)


@pytest.mark.parametrize("rho", [0.0, 0.9])
def test_action_noise_is_ar1_with_standard_normal_marginal(rho):
    """eps_t = rho eps_{t-1} + sqrt(1 - rho^2) xi_t: lag-1 correlation rho, marginal N(0, 1), carried over to the next
    iteration through TrainState.action_noise (the last step's eps of each env)."""
    ppo = PPO(make_env(), dataclasses.replace(CONFIG, num_envs=64, batch_size=64, unroll_length=16,
                                              action_noise_correlation=rho))
    state = ppo.init(jax.random.PRNGKey(3))
    eps, noise = _rollout_noise(ppo, state)
    lag1 = np.corrcoef(eps[:, 1:].ravel(), eps[:, :-1].ravel())[0, 1]
    assert abs(lag1 - rho) < 0.05, lag1
    assert abs(eps.std() - 1) < 0.05 and abs(eps.mean()) < 0.15, (eps.mean(), eps.std())  # ~250 AR(1) series
    if rho:
        num_envs = ppo.config.num_envs
        np.testing.assert_allclose(eps[-num_envs:, -1], noise, atol=1e-4)  # the last unroll's last step


def test_ppo_learns_with_correlated_noise():
    ppo = PPO(make_env(), dataclasses.replace(CONFIG, action_noise_correlation=0.9))
    state = ppo.init(jax.random.PRNGKey(0))
    rewards = []
    for _ in range(40):
        state, metrics = ppo.iteration(state)
        rewards.append(float(metrics["reward_mean"]))
    assert np.mean(rewards[-5:]) > np.mean(rewards[:3]) + 0.2, rewards
