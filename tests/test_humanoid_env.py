"""The MJX humanoid with VLM-RM's set-up: shapes under jit, no termination, zero env reward."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vlmrm_jax.envs import make_env
from vlmrm_jax.errors import VlmrmError


@pytest.fixture(scope="module")
def env():
    return make_env("humanoid")


@pytest.fixture(scope="module")
def rollout_states(env):
    """A jitted 80-step rollout with strong random actions (enough for the humanoid to fall)."""

    @jax.jit
    def run(state, actions):
        def step(state, action):
            state = env.step(state, action)
            lowest = state.pipeline_state.geom_xpos[1:, 2].min()  # geom 0 is the floor
            return state, (state.reward, state.done, state.pipeline_state.xpos[1, 2], state.obs, lowest)

        return jax.lax.scan(step, state, actions)

    actions = jax.random.uniform(jax.random.PRNGKey(1), (80, env.action_size), minval=-1, maxval=1)
    return run(jax.jit(env.reset)(jax.random.PRNGKey(0)), actions)


def test_sizes(env):
    assert env.observation_size == 244 and env.action_size == 17
    assert env.dt == pytest.approx(0.015)


def test_reset_and_step_shapes(env, rollout_states):
    state, (rewards, dones, torso_z, obs, _) = rollout_states
    assert state.obs.shape == (244,) and state.obs.dtype == jnp.float32
    assert rewards.shape == (80,) and obs.shape == (80, 244)
    assert np.all(np.isfinite(np.asarray(obs)))


def test_no_env_reward_and_no_termination(rollout_states):
    _, (rewards, dones, torso_z, _, _) = rollout_states
    np.testing.assert_array_equal(np.asarray(rewards), 0.0)
    np.testing.assert_array_equal(np.asarray(dones), 0.0)
    # brax's humanoid would have terminated below 1.0 m; this one keeps going while the torso drops.
    assert float(torso_z[0]) > 1.2 and float(torso_z.min()) < float(torso_z[0])


def test_fallen_body_rests_on_the_floor(rollout_states):
    """Every body geom collides with the floor: after the fall no geom centre is below it (brax's model lets only
    the feet touch the floor, so a fallen humanoid sinks head first)."""
    _, (_, _, torso_z, _, lowest) = rollout_states
    assert float(torso_z[-1]) < 0.5  # fallen
    assert float(np.min(lowest)) > 0.0


def test_unknown_env():
    with pytest.raises(VlmrmError, match="humanoid"):
        make_env("humanoid-v9")


def test_step_keeps_the_reset_state_structure(env):
    """Same tree, shapes, dtypes and weak types after reset and step, so jitted code compiles once."""
    reset = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
    stepped = jax.eval_shape(env.step, reset, jnp.zeros(env.action_size))
    assert jax.tree.structure(reset) == jax.tree.structure(stepped)
    for a, b in zip(jax.tree.leaves(reset), jax.tree.leaves(stepped)):
        assert (a.shape, a.dtype, a.weak_type) == (b.shape, b.dtype, b.weak_type)
