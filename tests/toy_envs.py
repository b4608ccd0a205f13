"""Tiny brax envs for testing the RL machinery in seconds."""

import jax
import jax.numpy as jnp
from brax.envs import training as brax_training
from brax.envs.base import Env, State


class PointEnv(Env):
    """A 2-D point that should move to the origin: obs = position, action = velocity, reward = -|position|."""

    def __init__(self, nan_after=None):
        self.nan_after = nan_after

    def reset(self, rng):
        pos = jax.random.uniform(rng, (2,), minval=-1.0, maxval=1.0)
        return State(pipeline_state=None, obs=pos, reward=jnp.zeros(()), done=jnp.zeros(()), metrics={},
                     info={"t": jnp.zeros((), jnp.int32)})

    def step(self, state, action):
        pos = jnp.clip(state.obs + 0.1 * action, -2.0, 2.0)
        t = state.info["t"] + 1
        reward = -jnp.linalg.norm(pos)
        if self.nan_after is not None:
            reward = jnp.where(t > self.nan_after, jnp.nan, reward)
        return state.replace(obs=pos, reward=reward, info={**state.info, "t": t})

    @property
    def observation_size(self):
        return 2

    @property
    def action_size(self):
        return 2

    @property
    def backend(self):
        return "none"


def make_point_env(episode_length=20, nan_after=None):
    """PointEnv batched and auto-reset like the training stack; ``nan_after`` makes rewards NaN after that many
    env steps of each env (to test the NaN guard)."""
    env = brax_training.EpisodeWrapper(PointEnv(nan_after), episode_length, action_repeat=1)
    return brax_training.AutoResetWrapper(brax_training.VmapWrapper(env))


