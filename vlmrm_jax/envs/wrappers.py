"""Wrappers that turn an environment into a VLM-rewarded one, and the standard training wrapper stack."""

from __future__ import annotations

from typing import Callable, Mapping

import jax
from brax.envs import training as brax_training
from brax.envs.base import Env, State, Wrapper

from vlmrm_jax.rewards import GoalBaselineReward

RenderFn = Callable[[State], jax.Array]
EmbedFn = Callable[[jax.Array], jax.Array]
#: Key of ``state.info`` holding per-step values (float32 [num_envs] each) that PPO averages over its rollouts.
STEP_METRICS = "step_metrics"


class VLMRewardWrapper(Wrapper):
    """Replaces a *batched* environment's reward with the VLM-RM reward of its rendered frames.

    After each step, every environment of the batch is rendered (``render_fn`` vmapped over the batch), the frames
    are embedded by CLIP in one batch (``embed_fn``) and scored by ``reward`` (goal-baseline projection,
    Rocamonde et al. 2023, Definition 1). All of it is traced into the caller's ``jit``: no frame leaves the device.

    The wrapped env must already be batched (brax's ``VmapWrapper``), so that CLIP sees the real batch of
    ``num_envs`` images rather than ``num_envs`` batches of one.

    Args:
        env: a batched env; ``state.reward`` float32 [num_envs].
        render_fn: renders ONE state: ``State -> float32 [H, W, 3]`` in [0, 1].
        embed_fn: ``float32 [B, H, W, 3] -> float32 [B, D]`` image embeddings (e.g. ``partial(clip.embed_images,
            clip.params)``).
        reward: the goal-baseline reward built from the prompt embeddings (computed once per run).
        metrics_fn: optional ``State -> dict[str, float32 []]`` for ONE state, e.g. pose predicates; vmapped and
            written to ``state.metrics`` each step.

    ``state.info["step_metrics"]`` holds ``vlm_reward`` and the ``metrics_fn`` values, float32 [num_envs] each,
    which PPO averages over its rollouts.
    """

    def __init__(self, env: Env, render_fn: RenderFn, embed_fn: EmbedFn, reward: GoalBaselineReward,
                 metrics_fn: Callable[[State], Mapping[str, jax.Array]] | None = None):
        super().__init__(env)
        self.render_fn = render_fn
        self.embed_fn = embed_fn
        self.reward = reward
        self.metrics_fn = metrics_fn

    def _score(self, state: State) -> State:
        frames = jax.vmap(self.render_fn)(state)
        reward = self.reward(self.embed_fn(frames))
        step_metrics = {"vlm_reward": reward}
        if self.metrics_fn is not None:
            step_metrics.update(jax.vmap(self.metrics_fn)(state))
        return state.replace(reward=reward, info={**state.info, STEP_METRICS: step_metrics})

    def reset(self, rng: jax.Array) -> State:
        """Resets the batch; the reset frame is scored too so that the state's structure never changes."""
        return self._score(self.env.reset(rng))

    def step(self, state: State, action: jax.Array) -> State:
        """Steps the batch, then renders, embeds and scores the new frames."""
        return self._score(self.env.step(state, action))


def wrap_for_vlm_training(env: Env, *, episode_length: int, render_fn: RenderFn, embed_fn: EmbedFn,
                          reward: GoalBaselineReward,
                          metrics_fn: Callable[[State], Mapping[str, jax.Array]] | None = None) -> Env:
    """brax's training stack with the VLM reward inserted where it sees the whole batch.

    ``env -> EpisodeWrapper(episode_length) -> VmapWrapper -> VLMRewardWrapper -> AutoResetWrapper``: episodes are
    truncated after ``episode_length`` env steps, the reward is computed from the frame reached by the step (before
    an automatic reset replaces it), and reset/step take batched rngs/actions.
    """
    env = brax_training.EpisodeWrapper(env, episode_length, action_repeat=1)
    env = brax_training.VmapWrapper(env)
    env = VLMRewardWrapper(env, render_fn, embed_fn, reward, metrics_fn)
    return brax_training.AutoResetWrapper(env)
