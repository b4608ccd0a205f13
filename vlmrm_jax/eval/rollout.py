"""Evaluation rollouts: whole episodes of a policy in a VLM-rewarded env, under one jit."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
from brax.envs import training as brax_training
from brax.envs.base import Env, State

from vlmrm_jax.envs.wrappers import STEP_METRICS, EmbedFn, RenderFn, VLMRewardWrapper
from vlmrm_jax.rewards import GoalBaselineReward


class Rollout(NamedTuple):
    """What an evaluation rollout returns.

    Attributes:
        rewards: float32 [T, B], the VLM reward of the frame reached by each step.
        step_metrics: dict of float32 [T, B] (``vlm_reward`` and the env's ``metrics_fn`` values).
        states: the brax States after each step, leaves [T, B, ...] (for rendering videos), or None.
    """

    rewards: jax.Array
    step_metrics: dict[str, jax.Array]
    states: State | None


def rollout(env: Env, policy: Callable[[jax.Array, jax.Array], tuple[jax.Array, Any]], key: jax.Array, *,
            num_episodes: int, episode_length: int, render_fn: RenderFn, embed_fn: EmbedFn,
            reward: GoalBaselineReward, metrics_fn=None, keep_states: bool = True) -> Rollout:
    """Runs ``num_episodes`` episodes of ``episode_length`` env steps in parallel and scores every frame.

    Args:
        env: the unbatched env (e.g. :class:`vlmrm_jax.envs.humanoid.Humanoid`).
        policy: ``policy(obs [B, obs_size], key) -> (action [B, action_size], extras)``, e.g. from
            :func:`vlmrm_jax.rl.make_policy_fn`.
        key: PRNG key for resets and the policy.
        num_episodes: parallel episodes ``B``.
        episode_length: env steps ``T``.
        render_fn, embed_fn, reward, metrics_fn: as for :class:`vlmrm_jax.envs.wrappers.VLMRewardWrapper`.
        keep_states: also return the states (memory: T x B copies of the env state).

    Returns:
        A :class:`Rollout`.
    """
    scored = VLMRewardWrapper(brax_training.VmapWrapper(env), render_fn, embed_fn, reward, metrics_fn)

    @jax.jit
    def run(key):
        key_reset, key_policy = jax.random.split(key)
        state = scored.reset(jax.random.split(key_reset, num_episodes))

        def step(state, key):
            action, _ = policy(state.obs, key)
            state = scored.step(state, action)
            return state, (state.reward, state.info[STEP_METRICS], state if keep_states else None)

        _, (rewards, step_metrics, states) = jax.lax.scan(step, state, jax.random.split(key_policy, episode_length))
        return Rollout(rewards, step_metrics, states)

    return run(key)


def episode_frames(render_fn: RenderFn, states: State, episode: int = 0) -> jax.Array:
    """Renders one episode of stacked states ([T, B, ...] leaves) as float32 [T, H, W, 3] in [0, 1]."""
    one = jax.tree.map(lambda x: x[:, episode], states)
    return jax.jit(jax.vmap(render_fn))(one)
