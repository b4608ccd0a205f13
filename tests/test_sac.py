"""SAC assembled from brax's components: learning on a tiny env, the trainer's exact resume, config errors."""

import jax
import numpy as np
import pytest

from toy_envs import make_point_env
from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.rl import make_policy_fn, read_metrics, train
from vlmrm_jax.rl.sac import SAC, SACConfig

# reward_scaling 10: the toy's rewards (-|pos| ~ -1..0) are small next to the initial entropy bonus (alpha 1).
# min_replay_size 88: the first iteration (80 transitions) only collects; gradient steps start in the second.
CONFIG = SACConfig(num_envs=8, unroll_length=10, batch_size=64, grad_updates_per_step=2, learning_rate=3e-3,
                   discounting=0.9, reward_scaling=10.0, min_replay_size=88, max_replay_size=4096,
                   hidden_layer_sizes=(32, 32), episode_length=20)
STEPS = CONFIG.env_steps_per_iteration  # 80


@pytest.fixture(scope="module")
def sac():
    return SAC(make_point_env(episode_length=20), CONFIG)


def test_sac_learns_to_reach_origin(sac):
    state = sac.init(jax.random.PRNGKey(0))
    policy = jax.tree.map(np.asarray, state.params.policy)
    state, metrics = sac.iteration(state)  # 80 transitions < min_replay_size: collect only
    jax.tree.map(np.testing.assert_array_equal, policy, state.params.policy)
    assert float(metrics["critic_loss"]) == 0.0
    rewards = [float(metrics["reward_mean"])]
    for _ in range(29):
        state, metrics = sac.iteration(state)
        rewards.append(float(metrics["reward_mean"]))
    assert int(state.env_steps) == 30 * STEPS
    assert float(metrics["buffer_size"]) == 30 * STEPS
    assert all(np.isfinite(rewards)) and float(metrics["critic_loss"]) > 0
    # A random policy sits near E|pos| ~ 0.8 (reward -0.8); the trained one goes to the origin.
    assert np.mean(rewards[-5:]) > np.mean(rewards[:2]) + 0.3, rewards
    # The deterministic policy, rolled out from fresh starts, ends near the origin.
    policy = make_policy_fn(sac, state, deterministic=True)
    obs = jax.random.uniform(jax.random.PRNGKey(5), (64, 2), minval=-1.0, maxval=1.0)
    for _ in range(20):
        obs = obs + 0.1 * policy(obs, jax.random.PRNGKey(0))[0]
    assert float(np.linalg.norm(obs, axis=-1).mean()) < 0.25


def test_trainer_resume_continues_exactly(sac, tmp_path):
    """The project's trainer and orbax checkpoints drive SAC as they drive PPO; the replay buffer is restored too."""
    straight = train(sac, total_steps=4 * STEPS, run_dir=tmp_path / "a", seed=3, show_progress=False)
    train(sac, total_steps=2 * STEPS, run_dir=tmp_path / "b", seed=3, show_progress=False)
    resumed = train(sac, total_steps=4 * STEPS, run_dir=tmp_path / "b", seed=999, resume=True, show_progress=False)
    assert int(resumed.env_steps) == int(straight.env_steps) == 4 * STEPS
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), straight.params,
                 resumed.params)
    np.testing.assert_array_equal(np.asarray(straight.buffer_state.data), np.asarray(resumed.buffer_state.data))
    records = read_metrics(tmp_path / "b")
    assert [r["env_steps"] for r in records] == [STEPS * i for i in range(1, 5)]
    assert {"reward_mean", "critic_loss", "actor_loss", "alpha", "buffer_size"} <= set(records[0])


@pytest.mark.parametrize("kwargs", [dict(num_envs=0), dict(batch_size=2.5), dict(learning_rate=0.0),
                                    dict(tau=1.5), dict(min_replay_size=10, max_replay_size=5)])
def test_bad_config_rejected(kwargs):
    with pytest.raises(VlmrmError):
        SACConfig(**kwargs)


def test_pipeline_builds_a_vlm_rewarded_sac(tiny_clip_dir):
    """``RunConfig(learner="sac")``: the pipeline's SAC on the CLIP-rewarded CartPole, sized by the PPO config's
    num_envs and episode_length, with the CLIP weights as an argument (traced only: shapes, no compile)."""
    from vlmrm_jax.pipeline import RunConfig, VLMSAC, build

    config = RunConfig(prompts=["pole vertically upright on top of the cart"], baseline_prompts=["pole and cart"],
                       model=str(tiny_clip_dir), env="cartpole", learner="sac",
                       ppo={"num_envs": 4, "batch_size": 4, "episode_length": 10},
                       sac={"unroll_length": 2, "batch_size": 8, "min_replay_size": 8, "max_replay_size": 64,
                            "hidden_layer_sizes": [8]})
    pipeline = build(config)
    assert isinstance(pipeline.ppo, VLMSAC)
    assert (pipeline.ppo.config.num_envs, pipeline.ppo.config.episode_length) == (4, 10)
    state = jax.eval_shape(pipeline.ppo.init, jax.random.PRNGKey(0))
    _, metrics = jax.eval_shape(pipeline.ppo.iteration, state)
    assert {"reward_mean", "critic_loss", "env/vlm_reward"} <= set(metrics)
    with pytest.raises(VlmrmError, match="learner='a2c'"):
        RunConfig(prompts=["x"], baseline_prompts=["y"], model="m", learner="a2c")
