"""Many hosts for real: two processes on localhost joined by ``jax.distributed`` (one CPU device each, gloo
collectives) train PPO to the same parameters as one process with two virtual devices and the same global batch,
once with the PPO loop alone and once through the CartPole training CLI (``--distributed``) into one shared run
directory, where only process 0 writes the plain files."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.rl import distributed

#: Seconds one process may take (the test took 70-84 s, 3 processes at once on the 2-core CPU at load 10-19);
#: a hung collective or coordinator fails the test instead of blocking CI.
TIMEOUT_S = 240

SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from vlmrm_jax.rl import distributed

    out, num_processes = Path(sys.argv[1]), int(sys.argv[2])
    if num_processes > 1:
        distributed.initialize(sys.argv[3], num_processes, int(sys.argv[4]), timeout_s=60)
    import jax, numpy as np
    from vlmrm_jax.rl.ppo import PPO, PPOConfig
    from toy_envs import make_point_env

    assert jax.process_count() == num_processes and len(jax.devices()) == 2, jax.devices()
    assert len(jax.local_devices()) == 2 // num_processes, jax.local_devices()
    config = PPOConfig(num_envs=8, unroll_length=5, batch_size=8, num_minibatches=2, num_updates_per_batch=2,
                       episode_length=10, policy_hidden_layer_sizes=(16,), value_hidden_layer_sizes=(16,))
    ppo = PPO(make_point_env(episode_length=10), config)  # default mesh: jax.devices(), all processes' devices
    state = ppo.init(jax.random.PRNGKey(0))
    rewards = []
    for _ in range(3):
        state, metrics = ppo.iteration(state)
        rewards.append(float(metrics["reward_mean"]))  # replicated: read on every process without a gather
    obs = state.env_state.obs
    assert len(obs.sharding.device_set) == 2 and not obs.sharding.is_fully_replicated, obs.sharding
    assert obs.is_fully_addressable == (num_processes == 1)
    assert all(x.is_fully_replicated for x in jax.tree.leaves(state.params))
    params, obs = distributed.host_value((state.params, obs))
    if distributed.is_main_process():
        leaves = {str(i): np.asarray(x) for i, x in enumerate(jax.tree.leaves(params))}
        np.savez(out / f"result{num_processes}.npz", obs=obs, rewards=np.array(rewards), env_steps=int(state.env_steps),
                 **leaves)
    (out / f"done{num_processes}.{jax.process_index()}").touch()
    print("OK")
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _start(out: Path, devices: int, *args: str, command: tuple[str, ...] = ("-c", SCRIPT),
           job: dict[str, str] | None = None) -> subprocess.Popen:
    """Starts ``python <command> <args>`` from the repository root with ``devices`` virtual CPU devices; ``job``
    sets the ``$JAX_*`` variables of a many-process job (unset otherwise)."""
    tests = Path(__file__).parent
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}",
               PYTHONPATH=os.pathsep.join([str(tests), str(tests.parent), os.environ.get("PYTHONPATH", "")]))
    for name in (distributed.COORDINATOR_ENV, distributed.NUM_PROCESSES_ENV, distributed.PROCESS_ID_ENV):
        env.pop(name, None)
    env.update(job or {})
    return subprocess.Popen([sys.executable, *command, *([str(out)] if command[0] == "-c" else []), *args], env=env,
                            cwd=tests.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(procs: dict[str, subprocess.Popen], timeout_s: float) -> dict[str, str]:
    """Waits for every process (at most ``timeout_s`` each), kills what is left, and returns their outputs."""
    outputs = {}
    try:
        for name, proc in procs.items():
            outputs[name], _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pytest.fail(f"a process hung for over {timeout_s} s; output so far: {outputs}")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return outputs


@pytest.mark.slow
def test_two_processes_match_one_process_with_two_devices(tmp_path):
    """All three processes run at once: the reference (1 process, 2 virtual devices) and the pair (2 processes,
    1 device each, coordinator on a free localhost port). Slow: the CLI test below checks the same equality through
    ``python -m experiments.cartpole --distributed`` (the suite's time budget)."""
    port = _free_port()
    procs = {"reference": _start(tmp_path, 2, "1"),
             **{f"process {i}": _start(tmp_path, 1, "2", f"localhost:{port}", str(i)) for i in range(2)}}
    outputs = _finish(procs, TIMEOUT_S)
    for name, proc in procs.items():
        assert proc.returncode == 0 and "OK" in outputs[name], f"{name}:\n{outputs[name][-3000:]}"
    assert sorted(p.name for p in tmp_path.glob("done*")) == ["done1.0", "done2.0", "done2.1"]
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == ["result1.npz", "result2.npz"]  # process 1 wrote none
    one, two = np.load(tmp_path / "result1.npz"), np.load(tmp_path / "result2.npz")
    assert set(one.files) == set(two.files) and len(one.files) > 4
    assert int(two["env_steps"]) == 3 * 8 * 2 * 5
    np.testing.assert_allclose(two["rewards"], one["rewards"], rtol=1e-5)
    np.testing.assert_allclose(two["obs"], one["obs"], rtol=1e-5, atol=1e-6)  # the env batch gathered from 2 hosts
    assert two["obs"].shape == (8, 2)
    for name in one.files:
        np.testing.assert_allclose(two[name], one[name], rtol=2e-4, atol=2e-5, err_msg=name)


def test_bad_process_count_names_the_variable(monkeypatch):
    monkeypatch.setenv(distributed.NUM_PROCESSES_ENV, "two")
    with pytest.raises(VlmrmError, match="JAX_NUM_PROCESSES='two'"):
        distributed.initialize("localhost:1")


def test_requested_follows_the_coordinator_variable(monkeypatch):
    monkeypatch.delenv(distributed.COORDINATOR_ENV, raising=False)
    assert not distributed.requested()
    monkeypatch.setenv(distributed.COORDINATOR_ENV, "10.0.0.1:8476")
    assert distributed.requested()


#: Seconds one CLI process may take: each spends ~37 s of CPU (imports, compiling PPO with render + CLIP, the
#: evaluation and the video), so the three need ~1 min on 2 idle cores and took 3-6 min at load 6-11.
CLI_TIMEOUT_S = 480
#: A CartPole run of 2 PPO iterations (4 envs x 4 steps x 2 unrolls each) with the tiny random CLIP at 16 px.
CLI_ARGS = ("--image-size", "16", "--num-envs", "4", "--unroll-length", "4", "--num-minibatches", "2",
            "--total-steps", "64", "--episode-length", "8", "--eval-episodes", "1", "--video-size", "32")


def _policy(run_dir: Path) -> dict[str, np.ndarray]:
    """The saved final policy of a run (normaliser, policy and value parameters) as NumPy, by tree path."""
    import jax
    import orbax.checkpoint as ocp

    (step,) = [p for p in (run_dir / "policy").iterdir() if p.name.isdigit()]
    checkpointer = ocp.PyTreeCheckpointer()
    tree = checkpointer.metadata(step / "state").item_metadata.tree
    restored = checkpointer.restore(step / "state", args=ocp.args.PyTreeRestore(
        restore_args=jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)))
    return {jax.tree_util.keystr(path): x for path, x in jax.tree_util.tree_leaves_with_path(restored)}


def test_cli_on_two_processes_writes_one_run_equal_to_one_process(tmp_path, tiny_clip_dir):
    """``python -m experiments.cartpole --distributed`` on two processes sharing one --out, against the same
    command without the flag in one process with 2 virtual devices: the same global batch of 4 envs."""
    port = _free_port()
    command = ("-m", "experiments.cartpole", "--model", str(tiny_clip_dir), *CLI_ARGS)
    job = {distributed.COORDINATOR_ENV: f"localhost:{port}", distributed.NUM_PROCESSES_ENV: "2"}
    procs = {"reference": _start(tmp_path, 2, "--out", str(tmp_path / "one"), command=command),
             **{f"process {i}": _start(tmp_path, 1, "--distributed", "--out", str(tmp_path / "pair"),
                                       command=command, job={**job, distributed.PROCESS_ID_ENV: str(i)})
                for i in range(2)}}
    outputs = _finish(procs, CLI_TIMEOUT_S)
    for name, proc in procs.items():
        assert proc.returncode == 0, f"{name}:\n{outputs[name][-3000:]}"
    assert "split over 2 devices of 2 processes" in outputs["process 0"]
    assert "done:" in outputs["process 0"] and "evaluation over" in outputs["process 0"]
    assert "done:" not in outputs["process 1"] and "evaluation over" not in outputs["process 1"]  # logs once
    one, pair = tmp_path / "one", tmp_path / "pair"
    assert sorted(p.name for p in pair.iterdir()) == sorted(p.name for p in one.iterdir())
    assert not list(pair.glob("*.tmp"))
    records = [json.loads(line) for line in (pair / "metrics.jsonl").read_text().splitlines()]
    reference = [json.loads(line) for line in (one / "metrics.jsonl").read_text().splitlines()]
    assert [r["env_steps"] for r in records] == [r["env_steps"] for r in reference] == [32, 64]  # each line once
    for mine, theirs in zip(records, reference):
        np.testing.assert_allclose(mine["reward_mean"], theirs["reward_mean"], rtol=1e-5)
    assert json.loads((pair / "config.json").read_text()) == json.loads((one / "config.json").read_text())
    summary, expected = json.loads((pair / "eval.json").read_text()), json.loads((one / "eval.json").read_text())
    assert summary.keys() == expected.keys() and summary["env_steps"] == 64 and summary["episodes"] == 1
    np.testing.assert_allclose(summary["mean_reward"], expected["mean_reward"], rtol=1e-5)
    assert (pair / "rollout.mp4").stat().st_size > 1000 and (pair / "reward_curve.png").stat().st_size > 1000
    assert sorted(p.name for p in (pair / "checkpoints").iterdir()) == ["32", "64"]
    mine, theirs = _policy(pair), _policy(one)
    assert mine.keys() == theirs.keys() and len(mine) > 10
    for name in mine:
        np.testing.assert_allclose(mine[name], theirs[name], rtol=2e-4, atol=2e-5, err_msg=name)


def test_distributed_sac_is_one_error_line(capsys, tmp_path):
    from experiments import cartpole

    assert cartpole.main(["--distributed", "--learner", "sac", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --distributed") and "--learner sac" in err[0], err
    assert not (tmp_path / "run").exists()


def test_cli_joins_on_import_only_when_asked_and_reports_a_failed_join(monkeypatch, capsys, tmp_path):
    """``join_if_requested`` (run when an experiment module imports the CLI) joins only for ``--distributed``
    without ``--help`` or SAC, and keeps its error for ``main`` to print as the one error line."""
    from experiments import cartpole, training_cli

    calls = []
    monkeypatch.setattr(training_cli.distributed, "initialize", lambda: calls.append("joined"))
    monkeypatch.setattr(training_cli, "_JOIN_ERROR", None)
    for argv in (["--out", "x"], ["--distributed", "--help"], ["--distributed", "--learner", "sac"],
                 ["--distributed", "--learner=sac"]):
        training_cli.join_if_requested(argv)
    assert calls == []
    training_cli.join_if_requested(["--distributed", "--out", "x"])
    assert calls == ["joined"]

    def refuse():
        raise VlmrmError("jax.distributed.initialize failed: coordinator_address should be defined.")

    monkeypatch.setattr(training_cli.distributed, "initialize", refuse)
    training_cli.join_if_requested(["--distributed"])
    monkeypatch.setattr(training_cli.distributed, "initialize", lambda: calls.append("joined again"))
    assert cartpole.main(["--distributed", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: jax.distributed.initialize failed: coordinator_address should be defined."], err
    assert calls == ["joined"] and not (tmp_path / "run").exists()
