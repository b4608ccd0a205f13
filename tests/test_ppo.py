"""PPO assembled from brax's components: learning on a tiny env, resume equivalence, config errors."""

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
