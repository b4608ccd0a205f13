"""Collect & infer (Di Palo et al. 2023, section 3.4 and Fig. 3) as jittable ``init`` and ``iteration`` functions.

One iteration (:meth:`CollectInfer.pure_iteration`: one pure, jittable function; :meth:`CollectInfer.iteration`:
the same as two compiled programs, the collect and the store + behaviour cloning) is:

1. **Collect.** ``num_envs`` actors (vmapped) each play one episode of at most ``episode_length`` actions with the
   current policy. Every actor starts at the first subgoal of the plan (the planner's subgoals, computed once per
   run; greedy decoding of a fixed instruction gives the same plan at every reset). After every action the
   detector checks every subgoal in the new state (``detect_fn``: for the CLIP detector, both cameras rendered and
   embedded); when it detects the actor's current subgoal, the actor moves on to the next one.
2. **Store.** An episode is stored, up to the step of its last reward, when the env rewarded it or a subgoal was
   detected in it (the paper's rule; a detection is the subgoal's auxiliary reward), in the on-device
   :class:`~vlmrm_jax.agent.buffer.EpisodeBuffer`. Every stored step keeps the subgoal the actor was pursuing when
   it acted, so the policy learns which action reaches which subgoal.
3. **Infer.** ``bc_steps`` Adam steps of behaviour cloning (self-imitation) on batches of stored episodes; the new
   weights act in the next iteration's collection. The weights are trained on (warm-started from the previous
   iteration), not re-initialised.

The sparse-reward baseline is the same learner with ``use_subgoals=False``: no detector is called, the policy is
conditioned on the plan's last subgoal throughout (a constant), and only env-rewarded episodes are stored.

Exploration: the policy samples its categorical (or Gaussian around its continuous mean) and with probability
``epsilon`` acts uniformly at random (:func:`vlmrm_jax.agent.policy.act`). The untrained policy (zero-initialised
logits) is uniform over the grid.

Success is the env's ground truth (``success_fn``, e.g. ``env.task_success``), never the detector.

Shapes: ``N = num_envs``, ``T = episode_length``, ``S`` subgoal captions, ``K`` plan slots, ``O`` observation size.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from brax.envs.base import Env, State

from vlmrm_jax.agent.buffer import BufferState, EpisodeBuffer
from vlmrm_jax.agent.policy import PolicyConfig, TransformerPolicy, act, bc_loss, check_sizes
from vlmrm_jax.errors import VlmrmError, check_positive_int

Metrics = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class CollectInferConfig:
    """Collect & infer hyper-parameters.

    Attributes:
        num_envs: actors collecting in parallel ``N`` (the paper used 1000); one iteration = N episodes.
        episode_length: env actions per episode ``T`` (the env's own limit; episodes end earlier on success).
        use_subgoals: True for collect & infer with the planner's subgoals and the detector; False for the
            sparse-reward baseline.
        bc_steps: behaviour-cloning Adam steps per iteration.
        bc_batch_size: stored episodes per BC step.
        buffer_capacity: stored episodes kept (oldest overwritten).
        learning_rate: Adam step size.
        max_grad_norm: global-norm gradient clip, or None.
        eval_envs: extra actors per iteration acting greedily (no exploration, nothing stored, not counted as
            training env steps) for the ``greedy_success_rate`` metric; 0 to skip.
        policy: the Transformer and its exploration noise.
    """

    num_envs: int = 16
    episode_length: int = 8
    use_subgoals: bool = True
    bc_steps: int = 16
    bc_batch_size: int = 32
    buffer_capacity: int = 4096
    learning_rate: float = 3e-4
    max_grad_norm: float | None = 1.0
    eval_envs: int = 0
    policy: PolicyConfig = PolicyConfig()

    def __post_init__(self):
        for name in ("num_envs", "episode_length", "bc_steps", "bc_batch_size", "buffer_capacity"):
            check_positive_int(name.replace("_", "-"), getattr(self, name))
        if not isinstance(self.eval_envs, int) or self.eval_envs < 0:
            raise VlmrmError(f"eval-envs={self.eval_envs!r} must be a non-negative integer")
        if not self.learning_rate > 0:
            raise VlmrmError(f"learning-rate={self.learning_rate!r} must be positive")
        if self.bc_batch_size > self.buffer_capacity:
            raise VlmrmError(f"bc-batch-size={self.bc_batch_size} exceeds buffer-capacity={self.buffer_capacity}")

    @property
    def env_steps_per_iteration(self) -> int:
        """The most env steps one iteration can take, ``num_envs * episode_length`` (episodes that succeed early
        take fewer; the state counts the real number)."""
        return self.num_envs * self.episode_length


@flax.struct.dataclass
class CollectInferState:
    """Everything a collect & infer run needs to continue: one pytree, saved and restored whole by orbax.

    Attributes:
        params: the policy's Flax parameters.
        optimizer_state: optax state.
        buffer: flashbax state of the stored episodes.
        env_steps: int32 [], env actions taken by the collecting actors so far.
        episodes: int32 [], episodes collected so far.
        rng: PRNG key [2] for the next iteration.
    """

    params: Any
    optimizer_state: optax.OptState
    buffer: BufferState
    env_steps: jax.Array
    episodes: jax.Array
    rng: jax.Array


class Trajectory(NamedTuple):
    """One collection of ``N`` episodes, leaves [T, N, ...] (step-major).

    Attributes:
        obs: float32 [T, N, O], the observation each action was chosen from.
        subgoal: int32 [T, N], the id (into the subgoal captions) of the subgoal pursued when acting.
        action: float32 [T, N, 2].
        alive: bool [T, N], the episode had not ended before this action (later steps are padding).
        reward: float32 [T, N], the env's reward for the action (0 on padding).
        detected: bool [T, N, S], the detector's verdict on every subgoal after the action (all False for the
            sparse learner).
        stage: int32 [T, N], plan subgoals reached after the action (0 .. plan length).
        event: bool [T, N], the action was rewarded by the env or reached the current subgoal.
        success: bool [T, N], the task holds after the action (ground truth, ``success_fn``).
        states: the env States after each action, leaves [T, N, ...], or None.
        embeddings: float32 [T, N, V, D], ``embed_fn`` of each state after the action (e.g. both cameras' CLIP image
            embeddings, for the lifelong buffer), or None without an ``embed_fn``.
    """

    obs: jax.Array
    subgoal: jax.Array
    action: jax.Array
    alive: jax.Array
    reward: jax.Array
    detected: jax.Array
    stage: jax.Array
    event: jax.Array
    success: jax.Array
    states: State | None
    embeddings: jax.Array | None = None


def stored_mask(traj: Trajectory) -> tuple[jax.Array, jax.Array]:
    """Which episodes qualify for the buffer and which of their steps are stored (the paper's rule).

    Returns:
        (keep bool [N]: an event happened; mask bool [T, N]: steps up to and including the episode's last event).
    """
    t = jnp.arange(traj.event.shape[0])[:, None]
    last = jnp.max(jnp.where(traj.event & traj.alive, t, -1), axis=0)  # [N]
    return last >= 0, traj.alive & (t <= last[None, :])


class CollectInfer:
    """Collect & infer on an (unbatched) env with pick/place actions.

    Args:
        env: a brax Env: ``reset(rng)``, ``step(state, action float32 [2])`` for ONE env (vmapped here),
            ``state.obs`` float32 [O], ``state.reward`` float32 [], ``state.done`` float32 [].
        config: hyper-parameters.
        subgoal_embeddings: float32 [S, D], the language embedding of every subgoal caption (row = subgoal id);
            the policy's first token.
        plan: int32 [K], the planner's subgoals as ids into those rows, in order; only the first ``plan_length``
            count.
        plan_length: subgoals in the plan (1 .. K).
        detect_fn: ``State -> bool [S]`` for ONE state: which subgoals the detector sees (the CLIP detector on both
            cameras' frames; ground truth ``env.subgoal_truth`` in tests). Required when ``use_subgoals``.
        success_fn: ``State -> bool []`` for ONE state: the task's ground truth; default ``env.task_success``.
        embed_fn: optional ``State -> float32 [V, D]`` for ONE state (e.g. the CLIP's unit image embeddings of both
            cameras). When given, ``detect_fn`` is called on its output instead of on the state (the frames are
            rendered and embedded once) and the :class:`Trajectory` keeps it in ``embeddings``.

    Raises:
        VlmrmError: a plan id outside ``[0, S)``, a plan length outside ``[1, K]``, a missing detector, or a token
            split that does not fit the observation.

    Use ``state = ci.init(rng)`` then ``state, metrics = ci.iteration(state)`` (both compiled;
    :meth:`pure_iteration` is the same iteration as one pure, jittable function). ``metrics`` are
    float32 scalars: ``reward_mean`` (env reward per env step), ``success_rate`` (ground truth, over this
    iteration's episodes), ``subgoals_reached`` (mean fraction of the plan detected per episode),
    ``episode_length_mean``, ``episodes_stored``, ``buffer_episodes``, ``bc_loss`` (mean over the BC steps),
    ``episodes`` (cumulative), and ``greedy_success_rate`` when ``eval_envs > 0``.
    """

    def __init__(self, env: Env, config: CollectInferConfig, *, subgoal_embeddings: jax.Array, plan,
                 plan_length: int, detect_fn: Callable[[State], jax.Array] | None = None,
                 success_fn: Callable[[State], jax.Array] | None = None,
                 embed_fn: Callable[[State], jax.Array] | None = None):
        self.env = env
        self.config = config
        self.subgoal_embeddings = jnp.asarray(subgoal_embeddings, jnp.float32)
        check_sizes(config.policy, env.observation_size, self.subgoal_embeddings)
        num_subgoals = self.subgoal_embeddings.shape[0]
        plan = np.asarray(plan, np.int32).reshape(-1)
        if not 1 <= plan_length <= plan.shape[0]:
            raise VlmrmError(f"plan length {plan_length} must be between 1 and the plan's {plan.shape[0]} slots; "
                             f"the planner produced no subgoal")
        bad = [int(i) for i in plan[:plan_length] if not 0 <= i < num_subgoals]
        if bad:
            raise VlmrmError(f"plan holds subgoal ids {bad} outside [0, {num_subgoals}); give ids into the "
                             f"{num_subgoals} subgoal captions")
        if config.use_subgoals and detect_fn is None:
            raise VlmrmError("collect & infer with subgoals needs a detect_fn (the subgoal detector); pass one, or "
                             "use_subgoals=False for the sparse baseline")
        self.plan = jnp.asarray(plan)
        self.plan_length = int(plan_length)
        self.detect_fn = detect_fn
        self.embed_fn = embed_fn
        self.success_fn = success_fn if success_fn is not None else env.task_success
        self.num_subgoals = num_subgoals
        self.network = TransformerPolicy(config.policy)
        clip = [optax.clip_by_global_norm(config.max_grad_norm)] if config.max_grad_norm else []
        self.optimizer = optax.chain(*clip, optax.adam(config.learning_rate))
        self.buffer = EpisodeBuffer(config.buffer_capacity, config.bc_batch_size)
        self.init = jax.jit(self._init)
        self.collect = jax.jit(self._collect, static_argnames=("num_envs", "keep_states"))
        self._learn = jax.jit(self._store_and_learn, donate_argnums=0)

    # -- pieces ---------------------------------------------------------------------------------------------------

    def _example_episode(self) -> dict:
        T, O = self.config.episode_length, self.env.observation_size
        return {"obs": jnp.zeros((T, O), jnp.float32), "subgoal": jnp.zeros((T,), jnp.int32),
                "action": jnp.zeros((T, 2), jnp.float32), "mask": jnp.zeros((T,), bool)}

    def _init(self, rng: jax.Array) -> CollectInferState:
        key_params, rng = jax.random.split(rng)
        params = self.network.init(key_params, self.subgoal_embeddings[:1],
                                   jnp.zeros((1, self.env.observation_size), jnp.float32))
        return CollectInferState(params=params, optimizer_state=self.optimizer.init(params),
                                 buffer=self.buffer.init(self._example_episode()),
                                 env_steps=jnp.zeros((), jnp.int32), episodes=jnp.zeros((), jnp.int32), rng=rng)

    def policy_output(self, params, subgoal: jax.Array, obs: jax.Array) -> jax.Array:
        """The policy's head output for subgoal ids int32 [...] and observations float32 [..., O]."""
        lead = subgoal.shape
        out = self.network.apply(params, self.subgoal_embeddings[subgoal.reshape(-1)],
                                 obs.reshape((-1, obs.shape[-1])))
        return out.reshape(lead + out.shape[-1:])

    def current_subgoal(self, stage: jax.Array) -> jax.Array:
        """int32 [...]: the subgoal id pursued at ``stage`` (plan subgoals reached); after the last one, and always
        for the sparse learner, the plan's last subgoal."""
        if not self.config.use_subgoals:
            stage = jnp.full_like(stage, self.plan_length - 1)
        return self.plan[jnp.minimum(stage, self.plan_length - 1)]

    def advance(self, stage: jax.Array, detected: jax.Array, alive: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Moves each actor past its current subgoal when the detector sees it.

        Args:
            stage: int32 [N], plan subgoals reached.
            detected: bool [N, S], the detector's verdicts after the action.
            alive: bool [N], the actor acted in a live episode.

        Returns:
            (new stage int32 [N], hit bool [N]: the current subgoal was reached by this action).
        """
        current = self.current_subgoal(stage)
        hit = jnp.take_along_axis(detected, current[:, None], axis=1)[:, 0] & (stage < self.plan_length) & alive
        return stage + hit.astype(jnp.int32), hit

    def _collect(self, params, key: jax.Array, explore: bool | jax.Array = True, *, num_envs: int,
                 keep_states: bool = False) -> Trajectory:
        """Plays ``num_envs`` episodes of at most ``episode_length`` actions; returns the :class:`Trajectory`.

        ``explore`` (bool, may be traced): exploration noise on (collecting) or off (greedy evaluation)."""
        key_reset, key_act = jax.random.split(key)
        env_state = jax.vmap(self.env.reset)(jax.random.split(key_reset, num_envs))
        stage = jnp.zeros((num_envs,), jnp.int32)
        done = jnp.zeros((num_envs,), bool)

        def step(carry, key):
            env_state, stage, done = carry
            alive = ~done
            subgoal = self.current_subgoal(stage)
            obs = env_state.obs
            action = act(self.config.policy, self.policy_output(params, subgoal, obs), key, explore=explore)
            stepped = jax.vmap(self.env.step)(env_state, action)
            env_state = jax.tree.map(
                lambda new, old: jnp.where(alive.reshape(alive.shape + (1,) * (new.ndim - 1)), new, old),
                stepped, env_state)
            reward = jnp.where(alive, stepped.reward, 0.0)
            embeddings = jax.vmap(self.embed_fn)(env_state) if self.embed_fn is not None else None
            if self.config.use_subgoals:
                seen = embeddings if self.embed_fn is not None else env_state
                detected = jax.vmap(self.detect_fn)(seen).astype(bool)
                stage, hit = self.advance(stage, detected, alive)
            else:
                detected = jnp.zeros((num_envs, self.num_subgoals), bool)
                hit = jnp.zeros((num_envs,), bool)
            success = jax.vmap(self.success_fn)(env_state).astype(bool) & alive
            out = Trajectory(obs=obs, subgoal=subgoal, action=action, alive=alive, reward=reward, detected=detected,
                             stage=stage, event=(reward > 0) | hit, success=success,
                             states=env_state if keep_states else None, embeddings=embeddings)
            done = done | (stepped.done > 0)
            return (env_state, stage, done), out

        _, traj = jax.lax.scan(step, (env_state, stage, done),
                               jax.random.split(key_act, self.config.episode_length))
        return traj

    def bc_loss(self, params, episodes: dict) -> jax.Array:
        """float32 []: the behaviour-cloning loss on stored episodes (arrays [B, T, ...], see the buffer)."""
        return bc_loss(self.config.policy, self.policy_output(params, episodes["subgoal"], episodes["obs"]),
                       episodes["action"], episodes["mask"])

    def _train(self, params, optimizer_state, buffer, key):
        def bc_step(carry, key):
            params, optimizer_state = carry
            loss, grads = jax.value_and_grad(self.bc_loss)(params, self.buffer.sample(buffer, key))
            updates, optimizer_state = self.optimizer.update(grads, optimizer_state, params)
            return (optax.apply_updates(params, updates), optimizer_state), loss

        (params, optimizer_state), losses = jax.lax.scan(bc_step, (params, optimizer_state),
                                                         jax.random.split(key, self.config.bc_steps))
        return params, optimizer_state, jnp.mean(losses)

    def _store_and_learn(self, state: CollectInferState, traj: Trajectory,
                         greedy: Trajectory | None = None) -> tuple[CollectInferState, Metrics]:
        """Stores the qualifying episodes of ``traj`` and runs the behaviour-cloning steps (steps 2 and 3)."""
        config = self.config
        _, _, key_train, rng = jax.random.split(state.rng, 4)
        keep, mask = stored_mask(traj)
        swap = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731  [T, N, ...] -> [N, T, ...]
        episodes = {"obs": swap(traj.obs), "subgoal": swap(traj.subgoal), "action": swap(traj.action),
                    "mask": swap(mask)}
        buffer = self.buffer.add(state.buffer, episodes, keep)
        params, optimizer_state, loss = jax.lax.cond(
            self.buffer.size(buffer) > 0, self._train,
            lambda p, o, b, k: (p, o, jnp.zeros((), jnp.float32)),
            state.params, state.optimizer_state, buffer, key_train)
        steps = jnp.sum(traj.alive).astype(jnp.int32)
        metrics = {"reward_mean": jnp.sum(traj.reward) / jnp.maximum(steps, 1),
                   "success_rate": jnp.mean(jnp.any(traj.success, axis=0)),
                   "subgoals_reached": jnp.mean(traj.stage[-1]) / self.plan_length,
                   "episode_length_mean": jnp.mean(jnp.sum(traj.alive, axis=0)),
                   "episodes_stored": jnp.sum(keep), "buffer_episodes": self.buffer.size(buffer),
                   "bc_loss": loss, "episodes": state.episodes + config.num_envs}
        if greedy is not None:
            metrics["greedy_success_rate"] = jnp.mean(jnp.any(greedy.success, axis=0))
        metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
        new_state = CollectInferState(params=params, optimizer_state=optimizer_state, buffer=buffer,
                                      env_steps=state.env_steps + steps, episodes=state.episodes + config.num_envs,
                                      rng=rng)
        return new_state, metrics

    def _keys(self, state: CollectInferState) -> tuple[jax.Array, jax.Array]:
        key_collect, key_eval, _, _ = jax.random.split(state.rng, 4)
        return key_collect, key_eval

    def pure_iteration(self, state: CollectInferState) -> tuple[CollectInferState, Metrics]:
        """One iteration (collect, store, behaviour cloning) as one pure function: jit it, scan it over iterations
        or vmap it over seeds. :meth:`iteration` computes the same thing."""
        key_collect, key_eval = self._keys(state)
        traj = self._collect(state.params, key_collect, True, num_envs=self.config.num_envs)
        greedy = (self._collect(state.params, key_eval, False, num_envs=self.config.eval_envs)
                  if self.config.eval_envs else None)
        return self._store_and_learn(state, traj, greedy)

    def iteration(self, state: CollectInferState) -> tuple[CollectInferState, Metrics]:
        """One iteration, as two compiled programs: the jitted :meth:`collect` (the same program the greedy
        evaluation and video use, so a run compiles the env's step once) and the jitted store + behaviour cloning.
        Equal to :meth:`pure_iteration`."""
        state, metrics, _ = self.iteration_with_trajectory(state)
        return state, metrics

    def iteration_with_trajectory(self, state: CollectInferState) -> tuple[CollectInferState, Metrics, Trajectory]:
        """:meth:`iteration`, also returning the collected :class:`Trajectory` (without states; with
        ``embeddings`` when there is an ``embed_fn``), e.g. for a lifelong buffer of every episode."""
        key_collect, key_eval = self._keys(state)
        traj = self.collect(state.params, key_collect, True, num_envs=self.config.num_envs, keep_states=True)
        greedy = (self.collect(state.params, key_eval, False, num_envs=self.config.eval_envs, keep_states=True)
                  if self.config.eval_envs else None)
        traj = traj._replace(states=None)
        state, metrics = self._learn(state, traj._replace(embeddings=None),
                                     None if greedy is None else greedy._replace(states=None, embeddings=None))
        return state, metrics, traj
