"""The training loop: metrics file, checkpoints, exact resume, NaN guard, corrupt checkpoints."""

import json
import shutil

import jax
import numpy as np
import pytest

from vlmrm_jax.errors import CheckpointError, NonFiniteError, VlmrmError
from vlmrm_jax.rl.ppo import PPO, PPOConfig
from vlmrm_jax.rl.trainer import read_metrics, train

from toy_envs import make_point_env

CONFIG = PPOConfig(num_envs=8, unroll_length=5, batch_size=8, num_minibatches=2, num_updates_per_batch=2,
                   learning_rate=1e-3, episode_length=10, policy_hidden_layer_sizes=(16,),
                   value_hidden_layer_sizes=(16,))
STEPS = CONFIG.env_steps_per_iteration  # 80


@pytest.fixture(scope="module")
def ppo():
    return PPO(make_point_env(episode_length=10), CONFIG)


def test_resume_continues_exactly(ppo, tmp_path):
    straight = train(ppo, total_steps=6 * STEPS, run_dir=tmp_path / "a", seed=3, show_progress=False)
    # A run "killed" after 3 iterations (its last checkpoint), then resumed to the end.
    train(ppo, total_steps=3 * STEPS, run_dir=tmp_path / "b", seed=3, show_progress=False)
    resumed = train(ppo, total_steps=6 * STEPS, run_dir=tmp_path / "b", seed=999, resume=True, show_progress=False)
    assert int(resumed.env_steps) == int(straight.env_steps) == 6 * STEPS
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), straight.params,
                 resumed.params)
    records = read_metrics(tmp_path / "b")
    assert [r["env_steps"] for r in records] == [STEPS * i for i in range(1, 7)]
    assert {"reward_mean", "steps_per_s", "total_loss"} <= set(records[0])


def test_resume_drops_metrics_written_after_last_checkpoint(ppo, tmp_path):
    train(ppo, total_steps=2 * STEPS, run_dir=tmp_path, show_progress=False)
    with (tmp_path / "metrics.jsonl").open("a") as f:  # as if killed after an un-checkpointed iteration
        f.write(json.dumps({"env_steps": 3 * STEPS, "reward_mean": 0.0}) + "\n")
        f.write(json.dumps({"env_steps": 4 * STEPS, "reward_mean": 0.0})[:15])  # ... while writing the next line
    assert [r["env_steps"] for r in read_metrics(tmp_path)] == [STEPS * i for i in range(1, 4)]  # torn line dropped
    train(ppo, total_steps=4 * STEPS, run_dir=tmp_path, resume=True, show_progress=False)
    assert [r["env_steps"] for r in read_metrics(tmp_path)] == [STEPS * i for i in range(1, 5)]


def test_a_damaged_metrics_line_before_the_last_is_named(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"env_steps": 1}\n{"env_st\n{"env_steps": 3}\n')
    with pytest.raises(VlmrmError, match=r"metrics.jsonl line 2 of 3 is not JSON"):
        read_metrics(tmp_path)


def test_new_run_refuses_existing_checkpoints(ppo, tmp_path):
    train(ppo, total_steps=STEPS, run_dir=tmp_path, show_progress=False)
    with pytest.raises(CheckpointError, match="--resume"):
        train(ppo, total_steps=2 * STEPS, run_dir=tmp_path, show_progress=False)


def test_resume_without_checkpoint_starts_from_the_seed(ppo, tmp_path):
    """A run killed before its first checkpoint: --resume trains it from scratch and drops the stray metrics."""
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"env_steps": STEPS, "reward_mean": 9.0}) + "\n")
    resumed = train(ppo, total_steps=2 * STEPS, run_dir=tmp_path / ".", seed=3, resume=True, show_progress=False)
    fresh = train(ppo, total_steps=2 * STEPS, run_dir=tmp_path / "fresh", seed=3, show_progress=False)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), resumed.params, fresh.params)
    assert [r["reward_mean"] for r in read_metrics(tmp_path)] == [r["reward_mean"] for r in read_metrics(
        tmp_path / "fresh")]


def test_checkpoint_after_first_iteration_and_wall_time_sums_over_sessions(ppo, tmp_path):
    lines = []
    train(ppo, total_steps=3 * STEPS, run_dir=tmp_path, checkpoint_every_s=1e9, show_progress=False,
          log=lines.append, expected_s=1e-6, slow_hint="lower --total-steps")
    steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [STEPS, 3 * STEPS]  # after the first iteration and at the end, none between
    assert lines[0].startswith("compiling (first iteration")
    assert lines[1].startswith("first iteration: compiled in") and "ETA" in lines[1]
    assert lines[2].startswith("warning: this run will take") and lines[2].endswith("lower --total-steps")
    first_session = read_metrics(tmp_path)
    assert "compile_s" in first_session[0] and "compile_s" not in first_session[1]
    metrics = (tmp_path / "metrics.jsonl").read_text().splitlines()
    metrics[0] = json.dumps({**json.loads(metrics[0]), "compile_s": 42.0})  # as if compiling had taken 42 s
    (tmp_path / "metrics.jsonl").write_text("\n".join(metrics) + "\n")
    lines.clear()
    train(ppo, total_steps=5 * STEPS, run_dir=tmp_path, resume=True, show_progress=False, log=lines.append)
    assert lines[0] == "compiling (first iteration, ~42 s on this machine)"  # measured by the first session
    records = read_metrics(tmp_path)
    assert [r["env_steps"] for r in records] == [STEPS * i for i in range(1, 6)]
    walls = [r["wall_s"] for r in records]
    assert walls == sorted(walls) and walls[3] > walls[2]  # the second session continues the first's clock


def test_corrupt_checkpoint(ppo, tmp_path):
    train(ppo, total_steps=STEPS, run_dir=tmp_path, show_progress=False)
    ckpt = tmp_path / "checkpoints" / str(STEPS) / "state"
    for f in ckpt.rglob("*"):
        if f.is_file() and f.stat().st_size > 0:
            f.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        train(ppo, total_steps=2 * STEPS, run_dir=tmp_path, resume=True, show_progress=False)


def test_nan_stops_run_and_keeps_last_good_checkpoint(tmp_path):
    # Rewards turn NaN after each env has taken 12 steps: iteration 1 (10 steps per env) is fine, iteration 2 not.
    ppo = PPO(make_point_env(episode_length=10, nan_after=12), CONFIG)
    with pytest.raises(NonFiniteError, match="reward_mean"):
        train(ppo, total_steps=5 * STEPS, run_dir=tmp_path, checkpoint_every_s=0.0, show_progress=False)
    checkpoints = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert checkpoints == [STEPS]


def test_checkpoint_round_trips_zero_size_arrays(tmp_path):
    """orbax refuses zero-size arrays; an MJX state holds some (``act``), so Checkpoints must still save it."""
    import jax.numpy as jnp

    from vlmrm_jax.rl.checkpoint import Checkpoints

    tree = {"a": jnp.arange(3.0), "empty": jnp.zeros((2, 0), jnp.int32), "b": {"c": jnp.ones(2)}}
    checkpoints = Checkpoints(tmp_path)
    checkpoints.save(5, tree, {"note": "x"})
    state, meta = checkpoints.restore(jax.eval_shape(lambda: tree))
    assert meta == {"note": "x"} and jax.tree.structure(state) == jax.tree.structure(tree)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b) or (a.dtype == b.dtype) or pytest.fail(), state,
                 tree)
