"""Reward landscapes: the jitted sweep against a by-hand computation, the grid, and EPIC per alpha against NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vlmrm_jax.envs import landscape_task, make_env
from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.eval import landscape
from vlmrm_jax.eval.landscape import SweepAxis
from vlmrm_jax.envs.classic import render
from vlmrm_jax.rewards import GoalBaselineReward

ALPHAS = (0.0, 0.5, 1.0)
SIZE = 16  # frames are resized to the tiny CLIP's 32 px input, as in training at --image-size 16


def paper_rewards(clip, task):
    goal, baseline = clip.embed_text([task.prompt]), clip.embed_text([task.baseline_prompt])
    return [GoalBaselineReward.from_embeddings(goal, baseline, alpha) for alpha in ALPHAS]


def by_hand(clip, rewards, frame):
    """The reward of one frame at every alpha, computed directly: embed, then Definition 1."""
    embedding = clip.embed_images(clip.params, frame[None])
    return np.asarray([float(reward(embedding)[0]) for reward in rewards])


def pearson_distance(x, y):
    return np.sqrt((1 - np.corrcoef(x, y)[0, 1]) / 2)


@pytest.fixture(scope="module")
def cartpole_sweep(tiny_clip):
    """CartPole over a 3 x 5 grid (15 states) in chunks of 4 frames, so the last chunk is padded."""
    task = landscape_task("cartpole")
    env = make_env("cartpole")
    rewards = paper_rewards(tiny_clip, task)
    axes = (SweepAxis("cart_position", -1.0, 1.0, 3, "m"), SweepAxis("pole_angle", -np.pi, np.pi, 5, "rad"))
    grid = landscape.sweep_grid(axes)
    sweep = landscape.make_landscape_fn(task, env, env.make_render_fn(SIZE, SIZE),
                                        lambda x: tiny_clip.embed_images(tiny_clip.params, x), rewards, batch_size=4)
    clip_rewards, true_rewards = sweep(grid)
    return task, env, rewards, grid, np.asarray(clip_rewards), np.asarray(true_rewards)


def test_grid_runs_over_every_combination_first_axis_slowest():
    grid = landscape.sweep_grid((SweepAxis("a", 0.0, 1.0, 2), SweepAxis("b", -1.0, 1.0, 3)))
    assert grid.dtype == np.float32
    np.testing.assert_allclose(grid, [[0, -1], [0, 0], [0, 1], [1, -1], [1, 0], [1, 1]])


def test_cartpole_sweep_shapes_and_true_reward(cartpole_sweep):
    _, _, _, grid, clip_rewards, true_rewards = cartpole_sweep
    assert clip_rewards.shape == (len(ALPHAS), 15) and clip_rewards.dtype == np.float32
    assert true_rewards.shape == (15,) and true_rewards.dtype == np.float32
    np.testing.assert_array_equal(true_rewards, (np.abs(grid[:, 1]) < np.radians(12)).astype(np.float32))
    assert np.all(np.isfinite(clip_rewards)) and np.ptp(clip_rewards[0]) > 0  # the frames differ


@pytest.mark.parametrize("index", [2, 13])  # (x -1, upright) and (x 1, pole leaning right at pi/2)
def test_cartpole_sweep_matches_a_direct_computation(cartpole_sweep, tiny_clip, index):
    _, _, rewards, grid, clip_rewards, _ = cartpole_sweep
    x, theta = grid[index]
    frame = render.make_cartpole_renderer(SIZE, SIZE)(jnp.float32(x), jnp.float32(theta))
    np.testing.assert_allclose(clip_rewards[:, index], by_hand(tiny_clip, rewards, frame), rtol=1e-5, atol=1e-6)


def test_mountain_car_sweep_matches_a_direct_computation(tiny_clip):
    look = "flat"  # the textured renderer is reached the same way (env.make_render_fn); the CLI test runs it
    task = landscape_task("mountain_car")
    env = make_env("mountain_car", look=look)
    rewards = paper_rewards(tiny_clip, task)
    grid = landscape.sweep_grid((SweepAxis("position", -1.2, 0.6, 7),))
    sweep = landscape.make_landscape_fn(task, env, env.make_render_fn(SIZE, SIZE),
                                        lambda x: tiny_clip.embed_images(tiny_clip.params, x), rewards)
    clip_rewards, true_rewards = (np.asarray(r) for r in sweep(grid))
    assert clip_rewards.shape == (3, 7)
    np.testing.assert_array_equal(true_rewards, 100.0 * (grid[:, 0] >= 0.45))  # at the flag, action 0
    renderer = render.make_mountain_car_renderer(SIZE, SIZE, look=look)
    for index in (1, 6):
        np.testing.assert_allclose(clip_rewards[:, index], by_hand(tiny_clip, rewards,
                                                                   renderer(jnp.float32(grid[index, 0]))),
                                   rtol=1e-5, atol=1e-6)


def test_epic_per_alpha_is_the_pearson_distance_over_the_grid(cartpole_sweep):
    """Both CartPole rewards depend on s' alone, so EPIC reduces to the Pearson distance of the two over the grid."""
    task, env, _, grid, clip_rewards, true_rewards = cartpole_sweep
    distances = landscape.epic_per_alpha(task, env, grid, clip_rewards, jax.random.PRNGKey(0))
    assert distances.shape == (len(ALPHAS),)
    np.testing.assert_allclose(distances, [pearson_distance(r, true_rewards) for r in clip_rewards], atol=1e-4)
    # Invariances and extremes: scale and offset do not count; the true reward is at distance 0, its negation at 1.
    tables = np.stack([3.0 * clip_rewards[0] - 7.0, true_rewards, -true_rewards])
    d = landscape.epic_per_alpha(task, env, grid, tables, jax.random.PRNGKey(1))
    np.testing.assert_allclose(d, [distances[0], 0.0, 1.0], atol=1e-3)


def test_mountain_car_epic_counts_the_action_cost():
    """MountainCar's true reward includes -0.1 a^2: against a reward of the position alone EPIC is small, not 0."""
    task = landscape_task("mountain_car")
    env = make_env("mountain_car", look="flat")
    grid = landscape.sweep_grid(task.axes)
    at_flag = (grid[:, 0] >= 0.45).astype(np.float32)[None]
    d = float(landscape.epic_per_alpha(task, env, grid, at_flag, jax.random.PRNGKey(0))[0])
    assert 0.0 < d < 0.01


def test_bad_input():
    with pytest.raises(VlmrmError, match="no reward landscape for env 'humanoid'"):
        landscape_task("humanoid")
    with pytest.raises(VlmrmError, match="empty"):
        SweepAxis("pole_angle", 1.0, 1.0, 10)
    with pytest.raises(VlmrmError, match="empty"):
        SweepAxis("pole_angle", 1.0, -1.0, 10)
    with pytest.raises(VlmrmError, match="at least 2"):
        SweepAxis("pole_angle", -1.0, 1.0, 1)
    task, env = landscape_task("mountain_car"), make_env("mountain_car")
    with pytest.raises(VlmrmError, match="one per grid state"):
        landscape.epic_per_alpha(task, env, np.zeros((4, 1), np.float32), np.zeros((2, 5)), jax.random.PRNGKey(0))
