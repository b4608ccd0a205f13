"""FreshResetWrapper and the training stack: every episode starts from a fresh random state, under one jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax.envs import training as brax_training

from toy_envs import PointEnv
from vlmrm_jax.envs.classic import MountainCar
from vlmrm_jax.envs.wrappers import RESET_RNG, FreshResetWrapper, wrap_for_vlm_training
from vlmrm_jax.rewards import GoalBaselineReward

EPISODE = 3
NUM_ENVS = 4


def point_stack(fresh: bool):
    env = brax_training.VmapWrapper(brax_training.EpisodeWrapper(PointEnv(), EPISODE, action_repeat=1))
    return FreshResetWrapper(env, jax.vmap(PointEnv().reset)) if fresh else brax_training.AutoResetWrapper(env)


def run(env, steps, action=0.3):
    """Jitted reset + ``steps`` steps with a constant action; returns the states after reset and after each step."""
    reset, step = jax.jit(env.reset), jax.jit(env.step)
    state = reset(jax.random.split(jax.random.PRNGKey(0), NUM_ENVS))
    states = [state]
    for _ in range(steps):
        state = step(state, jnp.full((NUM_ENVS, 2), action))
        states.append(state)
    return step, states


@pytest.fixture(scope="module")
def fresh_run():
    return run(point_stack(fresh=True), 3 * EPISODE)


def test_successive_episodes_start_from_different_states(fresh_run):
    _, states = fresh_run
    starts = np.stack([np.asarray(states[k * EPISODE].obs) for k in range(3)])  # [episode, env, 2]
    assert np.all(np.asarray(states[EPISODE].done) == 1.0)  # the episode ended and was reset at that step
    flat = starts.reshape(-1, 2)
    assert len({tuple(row) for row in flat}) == flat.shape[0]  # 12 distinct starts: no env repeats its first one
    assert np.all(np.abs(flat) <= 1.0)  # ... each from PointEnv's reset distribution (uniform in [-1, 1]^2)
    np.testing.assert_array_equal(np.asarray(states[EPISODE].info["steps"]), EPISODE)  # zeroed at the next step
    np.testing.assert_array_equal(np.asarray(states[EPISODE + 1].info["steps"]), 1.0)


def test_the_envs_own_info_restarts_with_each_episode(fresh_run):
    """PointEnv's ``info["t"]`` (its own step counter, 0 at reset) restarts at every fresh reset."""
    _, states = fresh_run
    t = np.stack([np.asarray(s.info["t"]) for s in states])  # [step, env]
    np.testing.assert_array_equal(t[:, 0], [0, 1, 2, 0, 1, 2, 0, 1, 2, 0])


def test_brax_autoreset_repeats_the_first_state_and_ours_matches_it_until_the_reset(fresh_run):
    """The behaviour being replaced (brax's cached first state), and the same rewards, dones and truncation as brax's
    wrapper up to and including the step that ends the first episode."""
    _, fresh = fresh_run
    _, cached = run(point_stack(fresh=False), EPISODE)
    np.testing.assert_array_equal(np.asarray(cached[EPISODE].obs), np.asarray(cached[0].obs))
    for a, b in zip(fresh[:EPISODE + 1], cached):
        np.testing.assert_allclose(np.asarray(a.reward), np.asarray(b.reward), rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(a.done), np.asarray(b.done))
        np.testing.assert_array_equal(np.asarray(a.info["truncation"]), np.asarray(b.info["truncation"]))
    assert not np.allclose(np.asarray(fresh[EPISODE].obs), np.asarray(cached[EPISODE].obs))


def test_state_structure_is_stable_and_compiles_once(fresh_run):
    step, states = fresh_run
    spec = lambda s: jax.tree.map(lambda x: (x.shape, x.dtype, getattr(x, "weak_type", False)), s)  # noqa: E731
    assert all(spec(s) == spec(states[1]) for s in states[1:])
    assert step._cache_size() == 1
    assert states[0].info[RESET_RNG].shape == (NUM_ENVS, 2)


def test_training_stack_resets_mountain_car_to_fresh_positions():
    """The library's stack (:func:`wrap_for_vlm_training`) around MountainCar: gym's reset draws the position
    uniformly in [-0.6, -0.4] with velocity 0; each new episode of each env gets a new draw."""
    env = MountainCar()
    reward = GoalBaselineReward.from_embeddings(jnp.eye(3)[:1], jnp.eye(3)[1:2], 0.0)
    train_env = wrap_for_vlm_training(env, episode_length=2, render_fn=lambda s: jnp.ones((2, 2, 3)),
                                      embed_fn=lambda frames: frames.mean(axis=(1, 2)), reward=reward)
    reset, step = jax.jit(train_env.reset), jax.jit(train_env.step)
    state = reset(jax.random.split(jax.random.PRNGKey(3), NUM_ENVS))
    starts = [np.asarray(state.pipeline_state.position)]
    for _ in range(3):
        for _ in range(2):
            state = step(state, jnp.ones((NUM_ENVS, 1)))
        assert np.all(np.asarray(state.done) == 1.0)
        assert np.all(np.asarray(state.pipeline_state.velocity) == 0.0)
        assert np.all(np.asarray(state.pipeline_state.time) == 0)
        starts.append(np.asarray(state.pipeline_state.position))
    starts = np.stack(starts)
    assert np.all((starts >= -0.6) & (starts <= -0.4))
    assert len(np.unique(starts)) == starts.size, starts
