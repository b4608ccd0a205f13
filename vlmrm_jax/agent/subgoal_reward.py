"""The two papers joined: PPO on a VLM-RM reward toward the *current* subgoal's caption, subgoals advancing on
detection (VLM-RM's goal-baseline reward, Rocamonde et al. 2023, Definition 1; Di Palo et al. 2023's subgoals).

:class:`SubgoalRewardEnv` turns an unbatched env into the batched, auto-resetting training env that
:class:`vlmrm_jax.rl.PPO` expects:

- every actor carries its stage in the plan (subgoals reached); the policy observes the env's observation with the
  one-hot of its current subgoal appended (so the reward it is paid is a function of what it sees);
- after every action, ``score_fn`` embeds the new state's camera views (and says which subgoals the detector sees);
  the reward is the goal-baseline projection reward of the views' mean unit embedding toward the current
  subgoal's caption embedding (one :class:`~vlmrm_jax.rewards.GoalBaselineReward` per subgoal, stacked); when the
  detector sees the current subgoal, the actor moves on to the next one;
- an episode ends when the env says so (task success or its action limit); the actor then starts a fresh random
  episode (``env.reset`` with a new key) at stage 0. ``info["truncation"]`` marks the ends that were not
  successes (the action limit), as brax's ``EpisodeWrapper`` does.

``state.info["step_metrics"]`` (averaged by PPO over its rollouts): ``vlm_reward``, ``success`` (ground truth after
the action), ``episode_end`` and ``episode_success`` (the action ended an episode / a successful one: their ratio
is the success rate over episodes), and ``subgoals_reached`` (fraction of the plan reached, at episode ends).
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from brax.envs.base import Env, State

from vlmrm_jax.agent.collect_infer import Trajectory
from vlmrm_jax.envs.wrappers import STEP_METRICS
from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.rewards import GoalBaselineReward
from vlmrm_jax.rl.ppo import PPO, PPOConfig, make_policy_fn
from vlmrm_jax.rewards.vlm_reward import normalize

ScoreFn = Callable[[State], tuple[jax.Array, jax.Array]]


def stack_rewards(rewards: Sequence[GoalBaselineReward]) -> GoalBaselineReward:
    """One GoalBaselineReward per subgoal stacked into one (leaves [S, ...]); index it with :func:`reward_of`.

    Raises:
        VlmrmError: if the rewards have different alphas or there are none.
    """
    if not rewards:
        raise VlmrmError("no subgoal rewards given; embed at least one subgoal caption")
    if len({r.alpha for r in rewards}) != 1:
        raise VlmrmError("the subgoal rewards have different alphas; build them with one alpha")
    return GoalBaselineReward.stack(rewards).replace(alpha=rewards[0].alpha)


def reward_of(rewards: GoalBaselineReward, subgoal: jax.Array) -> GoalBaselineReward:
    """The reward toward subgoal ``subgoal`` (int32 []) of stacked rewards (:func:`stack_rewards`)."""
    return jax.tree.map(lambda x: x[subgoal], rewards)


class SubgoalRewardEnv(Env):
    """A batched training env paying the VLM reward toward each actor's current subgoal (see the module docstring).

    Args:
        env: the unbatched env (``reset(rng)``, ``step(state, action)`` for ONE env; ``state.done`` ends episodes).
        rewards: stacked goal-baseline rewards, one per subgoal caption (:func:`stack_rewards`), leaves [S, ...].
        plan: int32 [K], the planner's subgoals as ids; the first ``plan_length`` count.
        plan_length: subgoals in the plan (1 .. K).
        score_fn: ``State -> (embeddings float32 [V, D], detected bool [S])`` for ONE state: the image embeddings of
            its V camera views and the detector's verdict on every subgoal.
        success_fn: ``State -> bool []`` for ONE state, the task's ground truth (e.g. ``env.task_success``).
        auto_reset: restart finished episodes (training); False keeps each actor in its first episode (for
            evaluation rollouts and videos: states after the end are the env's own continuation, mask them).

    Raises:
        VlmrmError: a bad plan (ids outside [0, S), a length outside [1, K]).
    """

    def __init__(self, env: Env, *, rewards: GoalBaselineReward, plan, plan_length: int, score_fn: ScoreFn,
                 success_fn: Callable[[State], jax.Array], auto_reset: bool = True):
        self.env = env
        self.auto_reset = auto_reset
        self.rewards = rewards
        self.num_subgoals = int(rewards.goal.shape[0])
        plan = np.asarray(plan, np.int32).reshape(-1)
        if not 1 <= plan_length <= plan.shape[0]:
            raise VlmrmError(f"plan length {plan_length} must be between 1 and the plan's {plan.shape[0]} slots")
        if any(not 0 <= int(i) < self.num_subgoals for i in plan[:plan_length]):
            raise VlmrmError(f"plan {plan[:plan_length].tolist()} holds ids outside [0, {self.num_subgoals})")
        self.plan = jnp.asarray(plan)
        self.plan_length = int(plan_length)
        self.score_fn = score_fn
        self.success_fn = success_fn

    @property
    def observation_size(self) -> int:
        """The env's observation size plus one entry per subgoal (the current subgoal's one-hot)."""
        return self.env.observation_size + self.num_subgoals

    @property
    def action_size(self) -> int:
        return self.env.action_size

    @property
    def backend(self) -> str:
        return self.env.backend

    def current_subgoal(self, stage: jax.Array) -> jax.Array:
        """int32 [N]: the subgoal pursued at ``stage`` (the last one once the plan is done)."""
        return self.plan[jnp.minimum(stage, self.plan_length - 1)]

    def _obs(self, inner: State, stage: jax.Array) -> jax.Array:
        return jnp.concatenate([inner.obs, jax.nn.one_hot(self.current_subgoal(stage), self.num_subgoals)], -1)

    def _wrap(self, inner, stage, reward, done, truncation, step_metrics, reset_rng, detected) -> State:
        return State(pipeline_state=inner, obs=self._obs(inner, stage), reward=reward, done=done, metrics={},
                     info={"stage": stage, "truncation": truncation, STEP_METRICS: step_metrics,
                           "reset_rng": reset_rng, "detected": detected})

    def reset(self, rng: jax.Array) -> State:
        """Starts ``N`` episodes from rngs uint32 [N, 2]."""
        n = rng.shape[0]
        inner = jax.vmap(self.env.reset)(rng)
        zeros = jnp.zeros((n,), jnp.float32)
        metrics = {k: zeros for k in ("vlm_reward", "success", "episode_end", "episode_success",
                                      "subgoals_reached")}
        return self._wrap(inner, jnp.zeros((n,), jnp.int32), zeros, zeros, zeros, metrics,
                          jax.vmap(lambda k: jax.random.fold_in(k, 1))(rng),
                          jnp.zeros((n, self.num_subgoals), bool))

    def step(self, state: State, action: jax.Array) -> State:
        """Acts in every env (actions float32 [N, A]); scores, advances subgoals, and restarts finished episodes."""
        stage = state.info["stage"]
        inner = jax.vmap(self.env.step)(state.pipeline_state, action)
        embeddings, detected = jax.vmap(self.score_fn)(inner)  # [N, V, D], [N, S]
        current = self.current_subgoal(stage)
        image = normalize(jnp.mean(normalize(embeddings), axis=1))  # the views' mean unit embedding [N, D]
        reward = jax.vmap(lambda e, i: reward_of(self.rewards, i)(e))(image, current)
        hit = jnp.take_along_axis(detected.astype(bool), current[:, None], axis=1)[:, 0] & (stage < self.plan_length)
        stage = stage + hit.astype(jnp.int32)
        success = jax.vmap(self.success_fn)(inner).astype(bool)
        done = inner.done > 0
        step_metrics = {"vlm_reward": reward, "success": success.astype(jnp.float32),
                        "episode_end": done.astype(jnp.float32),
                        "episode_success": (done & success).astype(jnp.float32),
                        "subgoals_reached": jnp.where(done, stage / self.plan_length, 0.0)}
        keys = jax.vmap(jax.random.split)(state.info["reset_rng"])
        if self.auto_reset:
            fresh = jax.vmap(self.env.reset)(keys[:, 1])
            where = lambda new, old: jnp.where(done.reshape(done.shape + (1,) * (old.ndim - 1)), new, old)  # noqa
            inner = jax.tree.map(where, fresh, inner)
            stage = jnp.where(done, 0, stage)
        return self._wrap(inner, stage, reward.astype(jnp.float32), done.astype(jnp.float32),
                          (done & ~success).astype(jnp.float32), step_metrics, keys[:, 0], detected.astype(bool))


class SubgoalPPO(PPO):
    """:class:`vlmrm_jax.rl.PPO` on a :class:`SubgoalRewardEnv`, whose iteration metrics add the episode-level
    ``success_rate`` (ground truth: successful episode ends over episode ends in the rollout; 0 when none ended) and
    ``subgoals_reached`` (mean fraction of the plan reached at episode ends)."""

    def __init__(self, env: SubgoalRewardEnv, config: PPOConfig, devices=None):
        super().__init__(env, config, devices)
        iteration = self.iteration

        def with_rates(state):
            state, metrics = iteration(state)
            ends = metrics["env/episode_end"]
            rate = lambda key: jnp.where(ends > 0, metrics[key] / jnp.maximum(ends, 1e-9), 0.0)  # noqa: E731
            return state, {**metrics, "success_rate": rate("env/episode_success"),
                           "subgoals_reached": rate("env/subgoals_reached")}

        self.iteration = with_rates


def ppo_rollout(ppo: PPO, state, env: SubgoalRewardEnv, key: jax.Array, num_episodes: int,
                episode_length: int) -> Trajectory:
    """One episode per actor of the trained PPO policy (deterministic) in ``env`` (built with
    ``auto_reset=False``), as a collect & infer :class:`~vlmrm_jax.agent.collect_infer.Trajectory` (states kept), so
    :func:`vlmrm_jax.agent.outputs.episode_video` draws it."""
    policy = make_policy_fn(ppo, state, deterministic=True)

    @jax.jit
    def run(key):
        key_reset, key_act = jax.random.split(key)
        env_state = env.reset(jax.random.split(key_reset, num_episodes))

        def step(carry, key):
            env_state, done = carry
            subgoal = env.current_subgoal(env_state.info["stage"])
            action, _ = policy(env_state.obs, key)
            new = env.step(env_state, action)
            alive = ~done
            reward = jnp.where(alive, new.info[STEP_METRICS]["success"], 0.0)
            out = Trajectory(obs=env_state.obs, subgoal=subgoal, action=action, alive=alive, reward=reward,
                             detected=new.info["detected"], stage=new.info["stage"], event=new.info["detected"].any(-1),
                             success=(new.info[STEP_METRICS]["success"] > 0) & alive, states=new.pipeline_state)
            return (new, done | (new.done > 0)), out

        _, traj = jax.lax.scan(step, (env_state, jnp.zeros((num_episodes,), bool)),
                               jax.random.split(key_act, episode_length))
        return traj

    return run(key)
