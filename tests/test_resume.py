"""A real ``kill -9`` of a training process, then ``--resume``: at most one checkpoint interval is lost, the run
continues from its last checkpoint with the flags given at resume applied, and wall time sums over sessions."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments import cartpole
from vlmrm_jax.rl.trainer import read_metrics

REPO = Path(__file__).resolve().parents[1]
STEPS = 4  # env steps per PPO iteration at these sizes
TINY = ["--image-size", "16", "--num-envs", "2", "--unroll-length", "2", "--batch-size", "2", "--num-minibatches", "1",
        "--num-updates-per-batch", "1", "--episode-length", "4", "--eval-episodes", "1", "--video-size", "16"]


def _checkpoint_steps(out: Path) -> list[int]:
    directory = out / "checkpoints"
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.exists() else []


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # Popen after JAX started: the child execs at once
def test_kill_9_then_resume_loses_at_most_one_checkpoint_interval(tiny_clip_dir, tmp_path):
    out = tmp_path / "run"
    # --checkpoint-every 0: a checkpoint after every iteration, so "one interval" is one iteration; the kill may land
    # anywhere, also inside an orbax save (whose temporary directory is never taken for a checkpoint).
    argv = ["--model", str(tiny_clip_dir), "--out", str(out), "--total-steps", "1000000", "--checkpoint-every", "0",
            *TINY]
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    process = subprocess.Popen([sys.executable, "-m", "experiments.cartpole", *argv], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.time() + 600
        while len(_checkpoint_steps(out)) < 2 or len(read_metrics(out)) < 3:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "the training process wrote no checkpoints in 600 s"
            time.sleep(0.2)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    written = read_metrics(out)[-1]["env_steps"]  # the last iteration the killed process reported
    kept = _checkpoint_steps(out)[-1]
    assert written - kept <= STEPS  # at most the iteration between its metrics line and its checkpoint is lost
    wall_at_kill = max(r["wall_s"] for r in read_metrics(out) if r["env_steps"] <= kept)

    # Resume with a new --total-steps (applied: the run stops there) and a new --eval-episodes.
    target = kept + 3 * STEPS
    assert cartpole.main(["--out", str(out), "--resume", "--total-steps", str(target), "--eval-episodes", "2"]) == 0
    records = read_metrics(out)
    assert [r["env_steps"] for r in records] == list(range(STEPS, target + 1, STEPS))  # continuous, no duplicates
    resumed = [r for r in records if r["env_steps"] > kept]
    assert "compile_s" in resumed[0] and all(r["wall_s"] > wall_at_kill for r in resumed)  # wall time sums
    assert _checkpoint_steps(out)[-1] == target
    config = json.loads((out / "config.json").read_text())
    assert config["total_steps"] == target and config["eval_episodes"] == 2
    assert json.loads((out / "eval.json").read_text())["episodes"] == 2
