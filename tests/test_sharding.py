"""Data-parallel PPO: the env batch split over several devices gives the same training as one device."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    from vlmrm_jax.rl.ppo import PPO, PPOConfig
    from toy_envs import make_point_env

    assert len(jax.devices()) == 2, jax.devices()
    config = PPOConfig(num_envs=8, unroll_length=5, batch_size=8, num_minibatches=2, num_updates_per_batch=2,
                       episode_length=10, policy_hidden_layer_sizes=(16,), value_hidden_layer_sizes=(16,))
    env = make_point_env(episode_length=10)
    results = []
    for devices in (jax.devices()[:1], jax.devices()):
        ppo = PPO(env, config, devices=devices)
        state = ppo.init(jax.random.PRNGKey(0))
        for _ in range(3):
            state, metrics = ppo.iteration(state)
        results.append((state, metrics))
    (one, m1), (two, m2) = results
    obs_sharding = two.env_state.obs.sharding
    assert len(obs_sharding.device_set) == 2 and not obs_sharding.is_fully_replicated, obs_sharding
    assert two.params.policy is not None
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5), one.params, two.params)
    np.testing.assert_allclose(m1["reward_mean"], m2["reward_mean"], rtol=1e-5)
    try:
        PPO(env, PPOConfig(num_envs=3, batch_size=3, num_minibatches=1))
    except Exception as e:
        assert "num-envs=3" in str(e) and "multiple of 2" in str(e), e
    else:
        raise AssertionError("num_envs=3 on 2 devices was accepted")
    print("OK")
""")


def test_two_devices_match_one_device():
    """Runs on 2 virtual CPU devices in a subprocess (the device count is fixed when JAX starts)."""
    tests = Path(__file__).parent
    env = dict(os.environ, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]
