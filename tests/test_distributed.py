"""Many hosts for real: two processes on localhost joined by ``jax.distributed`` (one CPU device each, gloo
collectives) train PPO to the same parameters as one process with two virtual devices and the same global batch."""

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


def _start(out: Path, devices: int, *args: str) -> subprocess.Popen:
    tests = Path(__file__).parent
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               PYTHONPATH=os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")]))
    for name in (distributed.COORDINATOR_ENV, distributed.NUM_PROCESSES_ENV, distributed.PROCESS_ID_ENV):
        env.pop(name, None)
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(out), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_two_processes_match_one_process_with_two_devices(tmp_path):
    """All three processes run at once: the reference (1 process, 2 virtual devices) and the pair (2 processes,
    1 device each, coordinator on a free localhost port)."""
    port = _free_port()
    procs = {"reference": _start(tmp_path, 2, "1"),
             **{f"process {i}": _start(tmp_path, 1, "2", f"localhost:{port}", str(i)) for i in range(2)}}
    outputs = {}
    try:
        for name, proc in procs.items():
            outputs[name], _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"a process hung for over {TIMEOUT_S} s; output so far: {outputs}")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
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
