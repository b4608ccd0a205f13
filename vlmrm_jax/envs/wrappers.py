"""Wrappers that turn an environment into a VLM-rewarded one, and the standard training wrapper stack."""

from __future__ import annotations

from typing import Callable, Mapping

import jax
import jax.numpy as jnp
from brax.envs import training as brax_training
from brax.envs.base import Env, State, Wrapper

from vlmrm_jax.rewards import GoalBaselineReward

RenderFn = Callable[[State], jax.Array]
EmbedFn = Callable[[jax.Array], jax.Array]
#: Key of ``state.info`` holding per-step values (float32 [num_envs] each) that PPO averages over its rollouts.
STEP_METRICS = "step_metrics"
#: Key of ``state.info`` holding the per-env PRNG keys (uint32 [num_envs, 2]) of :class:`FreshResetWrapper`.
RESET_RNG = "reset_rng"


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


class FreshResetWrapper(Wrapper):
    """Auto-reset of a *batched* env from a fresh random initial state each episode, as the env's own reset does.

    brax's ``AutoResetWrapper`` caches the state of the first ``reset`` and restores it whenever an env is done, so
    training sees only ``num_envs`` distinct starts (e.g. MountainCar: 16-32 fixed start positions). This wrapper
    instead calls ``reset_fn`` with a new key per env (``state.info["reset_rng"]``, uint32 [num_envs, 2], split at
    every step) and, where ``done``, replaces ``pipeline_state``, ``obs`` and the env's own ``info`` entries (those its
    ``reset`` creates, e.g. what is held) with the fresh ones. Like brax's wrapper it leaves ``reward``, ``done``,
    ``metrics`` and the wrappers' ``info`` of the finished step in place (the learner sees the last
    transition of the episode and its ``truncation``) and zeroes ``info["steps"]`` at the next step. The fresh states
    are computed only on steps where some env is done (``lax.cond``), so episodes that end together (fixed episode
    length, no termination) cost one batched reset per episode. The state's pytree structure, shapes and dtypes
    never change, so ``jit`` compiles one step.

    mujoco_playground's ``BraxAutoResetWrapper(full_reset=True)`` does the same for its own ``mjx_env.State``
    (``data``, not brax's ``pipeline_state``), and it is not a dependency: hence this small wrapper.

    Args:
        env: a batched env (``reset`` takes rngs [num_envs, 2]); its ``step`` sets ``done`` float32 [num_envs].
        reset_fn: ``rngs uint32 [num_envs, 2] -> State`` with batched ``pipeline_state`` and ``obs`` of the same
            structure as ``env``'s (e.g. ``jax.vmap(base_env.reset)`` of the unwrapped env, which skips the
            rendering and reward of wrappers in between).
    """

    def __init__(self, env: Env, reset_fn: Callable[[jax.Array], State]):
        super().__init__(env)
        self.reset_fn = reset_fn

    def reset(self, rng: jax.Array) -> State:
        """Resets the batch with ``rng`` [num_envs, 2] and derives the per-env keys of later resets from it."""
        state = self.env.reset(rng)
        reset_rng = jax.vmap(lambda key: jax.random.fold_in(key, 1))(rng)
        return state.replace(info={**state.info, RESET_RNG: reset_rng})

    def step(self, state: State, action: jax.Array) -> State:
        """Steps the batch; every env that is done afterwards starts its next episode from a fresh random state."""
        info = dict(state.info)
        if "steps" in info:
            info["steps"] = jnp.where(state.done, jnp.zeros_like(info["steps"]), info["steps"])
        state = self.env.step(state.replace(done=jnp.zeros_like(state.done), info=info), action)
        keys = jax.vmap(jax.random.split)(state.info[RESET_RNG])  # [num_envs, 2, 2]
        reset_rng, reset_key = keys[:, 0], keys[:, 1]
        done = state.done

        # The env's own per-episode info (e.g. stacking's "held") restarts with the episode; "steps" is zeroed at
        # the next step (above), as brax's wrappers do.
        env_keys = [k for k in jax.eval_shape(self.reset_fn, reset_key).info if k in state.info and k != "steps"]

        def fresh(_):
            new = self.reset_fn(reset_key)
            return new.pipeline_state, new.obs, {k: new.info[k] for k in env_keys}

        def kept(_):
            return state.pipeline_state, state.obs, {k: state.info[k] for k in env_keys}

        pipeline_state, obs, env_info = jax.lax.cond(jnp.any(done > 0), fresh, kept, None)

        def where_done(new, old):
            mask = jnp.reshape(done > 0, done.shape + (1,) * (old.ndim - done.ndim))
            return jnp.where(mask, new, old)

        info = {**state.info, **jax.tree.map(where_done, env_info, {k: state.info[k] for k in env_keys}),
                RESET_RNG: reset_rng}
        return state.replace(pipeline_state=jax.tree.map(where_done, pipeline_state, state.pipeline_state),
                             obs=jax.tree.map(where_done, obs, state.obs), info=info)


def wrap_for_vlm_training(env: Env, *, episode_length: int, render_fn: RenderFn, embed_fn: EmbedFn,
                          reward: GoalBaselineReward,
                          metrics_fn: Callable[[State], Mapping[str, jax.Array]] | None = None) -> Env:
    """brax's training stack with the VLM reward inserted where it sees the whole batch.

    ``env -> EpisodeWrapper(episode_length) -> VmapWrapper -> VLMRewardWrapper -> FreshResetWrapper``: episodes are
    truncated after ``episode_length`` env steps, the reward is computed from the frame reached by the step (before
    an automatic reset replaces it), every episode starts from a fresh random state of ``env.reset`` (not brax's
    cached first state), and reset/step take batched rngs/actions.
    """
    reset_fn = jax.vmap(env.reset)
    env = brax_training.EpisodeWrapper(env, episode_length, action_repeat=1)
    env = brax_training.VmapWrapper(env)
    env = VLMRewardWrapper(env, render_fn, embed_fn, reward, metrics_fn)
    return FreshResetWrapper(env, reset_fn)
