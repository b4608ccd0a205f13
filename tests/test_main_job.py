"""The main job end to end on CPU with a tiny CLIP: train, write every output, re-evaluate."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

from experiments import evaluate, humanoid
from vlmrm_jax.rl.trainer import read_metrics

TINY = ["--image-size", "16", "--no-shadows", "--num-envs", "2", "--unroll-length", "2", "--batch-size", "2",
        "--num-minibatches", "1", "--num-updates-per-batch", "1", "--episode-length", "4", "--total-steps", "8",
        "--eval-episodes", "2", "--video-size", "32"]


@pytest.fixture(scope="module")
def run_dir(tiny_clip_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("main_job") / "run"
    argv = ["--prompt", "a humanoid robot kneeling", "--model", str(tiny_clip_dir), "--out", str(out)] + TINY
    assert humanoid.main(argv) == 0
    return out


def test_main_job_writes_every_output(run_dir):
    for name in ("config.json", "metrics.jsonl", "reward_curve.png", "rollout.mp4", "eval.json"):
        assert (run_dir / name).stat().st_size > 0, name
    assert any((run_dir / "checkpoints").iterdir()) and any((run_dir / "policy").iterdir())
    records = read_metrics(run_dir)
    assert [r["env_steps"] for r in records] == [4, 8]
    assert {"reward_mean", "steps_per_s", "env/kneeling", "env/standing"} <= set(records[-1])
    summary = json.loads((run_dir / "eval.json").read_text())
    assert summary["task"] == "kneeling" and 0.0 <= summary["success_rate"] <= 1.0
    assert summary["env_steps"] == 8 and summary["episodes"] == 2
    frames = iio.imread(run_dir / "rollout.mp4")
    assert frames.shape[0] == 4 and frames.shape[-1] == 3  # one frame per env step of the episode


def test_evaluate_reloads_the_policy(run_dir, capsys):
    states = run_dir / "policy_states.npz"
    assert evaluate.main(["--run", str(run_dir), "--episodes", "1", "--save-states", str(states)]) == 0
    out = capsys.readouterr().out
    assert "mean_reward" in out and "success_rate" in out
    assert (run_dir / "rollout_eval.mp4").stat().st_size > 0
    with np.load(states) as f:  # [episodes, episode_length, nq/nv], a moving humanoid
        assert f["qpos"].shape == (1, 4, 24) and f["qvel"].shape == (1, 4, 23)
        assert np.all(np.diff(f["qpos"][0], axis=0) != 0, axis=1).any()


def test_resume_of_a_finished_run_trains_and_evaluates_no_further(run_dir, capsys):
    video = (run_dir / "rollout.mp4").stat().st_mtime_ns
    assert humanoid.main(["--out", str(run_dir), "--resume"]) == 0
    assert [r["env_steps"] for r in read_metrics(run_dir)] == [4, 8]
    assert "is finished at env step 8 and already evaluated" in capsys.readouterr().out
    assert (run_dir / "rollout.mp4").stat().st_mtime_ns == video
