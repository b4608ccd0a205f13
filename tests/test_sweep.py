"""Sweeps (seeds x alphas) as one vmapped program: run i of the sweep trains exactly as the single VLM-RM PPO run
with its seed and alpha; per-run rewards; the trainer's checkpoints and resume; the run axis over 2 devices."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vlmrm_jax.envs.wrappers import wrap_for_vlm_training
from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.pipeline import VLMPPO
from vlmrm_jax.rewards import GoalBaselineReward
from vlmrm_jax.rl import PPOConfig, SweepPPO, make_policy_fn, read_metrics, train

from toy_envs import PointEnv

CONFIG = PPOConfig(num_envs=8, unroll_length=5, batch_size=8, num_minibatches=2, num_updates_per_batch=2,
                   learning_rate=1e-3, episode_length=10, policy_hidden_layer_sizes=(16,),
                   value_hidden_layer_sizes=(16,))
STEPS = CONFIG.env_steps_per_iteration  # 80
D = 4
_rng = np.random.default_rng(0)
#: A fake "CLIP": frames (the point's position, [B, 2]) -> tanh(frames W + b), [B, D]; shared by all runs.
WEIGHTS = {"w": jnp.asarray(_rng.normal(size=(2, D)), jnp.float32), "b": jnp.asarray(_rng.normal(size=D), jnp.float32)}
GOAL, BASELINE = _rng.normal(size=(2, D)).astype(np.float32), _rng.normal(size=(1, D)).astype(np.float32)
ALPHAS, SEEDS = (0.0, 1.0), (3, 7)  # run 0: alpha 0, seed 3; run 1: alpha 1, seed 7


def make_env(weights, reward):
    """The VLM-rewarded training stack around PointEnv, with the fake embedding of ``weights``."""
    return wrap_for_vlm_training(PointEnv(), episode_length=CONFIG.episode_length, render_fn=lambda s: s.obs,
                                 embed_fn=lambda frames: jnp.tanh(frames @ weights["w"] + weights["b"]),
                                 reward=reward)


def rewards(alphas=ALPHAS):
    return [GoalBaselineReward.from_embeddings(GOAL, BASELINE, a) for a in alphas]


def numpy_reward(obs, alpha):
    """Rocamonde et al. 2023, Definition 1, in NumPy, of the fake embeddings of positions obs [..., 2]."""
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    s = unit(np.tanh(obs.astype(np.float64) @ np.asarray(WEIGHTS["w"]) + np.asarray(WEIGHTS["b"])))
    g, b = unit(GOAL.astype(np.float64)).mean(0), unit(BASELINE.astype(np.float64)).mean(0)
    d = g - b
    y = (s - g) @ (alpha * np.outer(d, d) / (d @ d) + (1 - alpha) * np.eye(D))
    return 1 - 0.5 * (y ** 2).sum(-1)


@pytest.fixture(scope="module")
def sweep():
    return SweepPPO(make_env, WEIGHTS, rewards(), SEEDS, CONFIG)


@pytest.fixture(scope="module")
def trained(sweep):
    """(initial state as NumPy, state after 2 iterations, the iterations' metrics)."""
    state = sweep.init(jax.random.PRNGKey(0))
    initial = jax.tree.map(np.asarray, state)
    metrics = []
    for _ in range(2):
        state, m = sweep.iteration(state)
        metrics.append({k: float(v) for k, v in m.items()})
    return initial, state, metrics


def test_each_run_matches_its_single_run(sweep, trained):
    """The independent reference: pipeline.VLMPPO, the production single run (weights as an argument). Its
    "weights" here are the fake CLIP and the run's reward arrays, so that one compile serves both runs."""
    _, state, metrics = trained

    def make_single_env(weights):
        clip, arrays = weights
        return make_env(clip, GoalBaselineReward(**arrays, alpha=0.0))  # the formula reads only the arrays

    def run_weights(reward):
        return WEIGHTS, {"goal": reward.goal, "baseline": reward.baseline, "projection": reward.projection}

    single = VLMPPO(make_single_env, run_weights(rewards()[0]), CONFIG)
    init, iteration = single.init.func, single.iteration.func  # jitted functions of (weights, ...)
    for i, (reward, seed) in enumerate(zip(rewards(), SEEDS)):
        one = init(run_weights(reward), jax.random.fold_in(jax.random.PRNGKey(0), seed))
        for k in range(2):
            one, m = iteration(run_weights(reward), one)
            np.testing.assert_allclose(metrics[k][f"run{i}/reward_mean"], float(m["reward_mean"]), rtol=1e-5)
        run = sweep.run_state(state, i)
        assert jax.tree.structure(run) == jax.tree.structure(one)
        for got, want in zip(jax.tree.leaves(run), jax.tree.leaves(one)):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_each_run_is_paid_its_own_alpha(trained):
    """The reset frames are scored with each run's own projection (NumPy reference); the alphas really differ."""
    initial, _, metrics = trained
    obs, paid = initial.runs.env_state.obs, initial.runs.env_state.reward  # [R, B, 2], [R, B]
    for i, alpha in enumerate(ALPHAS):
        np.testing.assert_allclose(paid[i], numpy_reward(obs[i], alpha), rtol=1e-5, atol=1e-5)
        assert np.max(np.abs(paid[i] - numpy_reward(obs[i], ALPHAS[1 - i]))) > 1e-2
    assert abs(metrics[0]["run0/reward_mean"] - metrics[0]["run1/reward_mean"]) > 1e-2


def test_shapes_metrics_and_run_access(sweep, trained):
    _, state, metrics = trained
    assert (sweep.num_runs, sweep.seeds, sweep.alphas) == (2, SEEDS, ALPHAS)
    assert state.env_steps.shape == () and int(state.env_steps) == 2 * STEPS
    np.testing.assert_array_equal(np.asarray(state.runs.env_steps), [2 * STEPS] * 2)
    assert all(x.shape[0] == 2 for x in jax.tree.leaves(state.runs))
    assert state.runs.env_state.obs.shape == (2, CONFIG.num_envs, 2) and state.runs.rng.shape == (2, 2)
    assert state.params is state.runs.params
    names = {k for k in metrics[0] if "/" not in k or k.startswith("env/")}
    assert {"reward_mean", "reward_std", "total_loss", "env/vlm_reward"} <= names
    assert set(metrics[0]) == names | {f"run{i}/{k}" for k in names for i in range(2)}
    np.testing.assert_allclose(metrics[1]["reward_mean"],
                               np.mean([metrics[1]["run0/reward_mean"], metrics[1]["run1/reward_mean"]]), rtol=1e-6)
    run = sweep.run_state(state, 1)
    assert run.env_state.obs.shape == (CONFIG.num_envs, 2) and run.env_steps.shape == ()
    action, _ = make_policy_fn(sweep.ppo, run)(run.env_state.obs, jax.random.PRNGKey(0))
    assert action.shape == (CONFIG.num_envs, 2) and np.all(np.isfinite(np.asarray(action)))
    assert sweep.run_reward(1).alpha == 1.0 and sweep.run_reward(1).projection.shape == (D, D)
    with pytest.raises(VlmrmError, match="run index 2"):
        sweep.run_state(state, 2)


def test_stacked_rewards_round_trip():
    stacked = GoalBaselineReward.stack(rewards((0.0, 0.5, 1.0)))
    assert stacked.projection.shape == (3, D, D) and stacked.alpha == (0.0, 0.5, 1.0)
    for one, back in zip(rewards((0.0, 0.5, 1.0)), stacked.unstack()):
        assert back.alpha == one.alpha
        np.testing.assert_array_equal(np.asarray(back.projection), np.asarray(one.projection))
    with pytest.raises(VlmrmError, match="no rewards"):
        GoalBaselineReward.stack([])


@pytest.mark.parametrize("seeds, match", [((3,), "2 rewards but 1 seeds"), ((3, -1), "seed=-1"),
                                          ((3, 1.5), "seed=1.5")])
def test_bad_runs_rejected(seeds, match):
    with pytest.raises(VlmrmError, match=match):
        SweepPPO(make_env, WEIGHTS, rewards(), seeds, CONFIG)


def test_runs_must_split_over_devices():
    """Checked before anything is built (the device list's identity does not matter for the message)."""
    with pytest.raises(VlmrmError, match="3 runs do not split over 2 devices.*multiple of 2"):
        SweepPPO(make_env, WEIGHTS, rewards((0.0, 0.5, 1.0)), (0, 1, 2), CONFIG, devices=jax.devices()[:1] * 2)


def test_trainer_checkpoints_and_resumes_the_sweep(sweep, trained, tmp_path):
    """train() on the sweep, killed after 1 iteration and resumed to 2, reaches the 2 iterations of `trained`."""
    _, straight, _ = trained
    train(sweep, total_steps=STEPS, run_dir=tmp_path, seed=0, show_progress=False, log=lambda _: None)
    resumed = train(sweep, total_steps=2 * STEPS, run_dir=tmp_path, seed=99, resume=True, show_progress=False,
                    log=lambda _: None)
    assert int(resumed.env_steps) == 2 * STEPS
    assert sweep.iteration.func._cache_size() == 1  # the restored state ran the compiled iteration
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), resumed.runs.params,
                 straight.runs.params)
    records = read_metrics(tmp_path)
    assert [r["env_steps"] for r in records] == [STEPS, 2 * STEPS]
    assert {"reward_mean", "run0/reward_mean", "run1/total_loss", "steps_per_s"} <= set(records[-1])


SCRIPT = textwrap.dedent("""
    import sys
    import jax, numpy as np
    from vlmrm_jax.rl import SweepPPO, train
    from test_sweep import CONFIG, SEEDS, STEPS, WEIGHTS, make_env, rewards

    assert len(jax.devices()) == 2, jax.devices()
    try:
        SweepPPO(make_env, WEIGHTS, rewards((0.0, 0.5, 1.0)), (0, 1, 2), CONFIG)
    except Exception as e:
        assert "3 runs do not split over 2 devices" in str(e), e
    else:
        raise AssertionError("3 runs on 2 devices were accepted")
    sweep = SweepPPO(make_env, WEIGHTS, rewards(), SEEDS, CONFIG)
    train(sweep, total_steps=STEPS, run_dir=sys.argv[1], show_progress=False, log=lambda _: None)
    state = train(sweep, total_steps=2 * STEPS, run_dir=sys.argv[1], resume=True, show_progress=False,
                  log=lambda _: None)  # restored onto the 2 devices, then trained on
    for leaf in jax.tree.leaves(state.runs):
        assert len(leaf.sharding.device_set) == 2 and not leaf.sharding.is_fully_replicated, leaf.sharding
        assert {s.device.id: s.index[0] for s in leaf.addressable_shards} == {0: slice(0, 1), 1: slice(1, 2)}
    assert sweep.iteration.func._cache_size() == 1  # the restored state ran the compiled iteration
    np.savez(sys.argv[2], *[np.asarray(x) for x in jax.tree.leaves(state.runs)])
    print("OK")
""")


def test_runs_sharded_over_two_devices(trained, tmp_path):
    """2 virtual CPU devices in a subprocess (the device count is fixed when JAX starts): device k trains run k
    whole; train + resume there reaches the 2 iterations of the sweep on one device (`trained`)."""
    tests = Path(__file__).parent
    env = dict(os.environ, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "runs.npz"
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "run"), str(out)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]
    two = np.load(out)
    leaves = jax.tree.leaves(trained[1].runs)
    assert len(two.files) == len(leaves)
    for k, want in enumerate(leaves):
        np.testing.assert_allclose(two[f"arr_{k}"], np.asarray(want), rtol=1e-5, atol=1e-6)
