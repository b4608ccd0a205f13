"""SAC assembled from brax's components, as pure JAX functions (``init`` / ``iteration``), like :mod:`vlmrm_jax.rl.ppo`.

VLM-RM trained its humanoid with SAC (Rocamonde et al. 2023, appendix; the authors' stable-baselines3 config:
gamma 0.95, learning rate 6e-4, batch 512, 32 envs, episode length 100). The networks, the three losses
(Haarnoja et al. 2018, arXiv 1812.05905: critic with twin Q and target network, actor, temperature alpha with target
entropy ``-action_size / 2``), the replay buffer (``brax.training.replay_buffers.UniformSamplingQueue``), acting and
the observation normaliser are brax's own (``brax.training.agents.sac.networks``, ``.losses``); the schedule is
brax's ``sac.train`` training step (one actor step of ``num_envs`` envs, then ``grad_updates_per_step`` gradient
steps on batches of ``batch_size`` sampled uniformly from the buffer, Polyak-averaged target ``tau``). brax's own
``sac.train`` is not used because it calls ``jax.device_put_replicated`` (gone in jax 0.10) and keeps its state
outside one pytree; here:

- one jitted call = one SAC iteration of ``unroll_length`` actor steps (``num_envs * unroll_length`` env steps, each
  followed by its gradient steps), so :func:`vlmrm_jax.rl.trainer.train` reports progress, checks for NaN and writes
  checkpoints between iterations exactly as for PPO;
- the whole :class:`SACTrainState` (parameters, optimiser states, normaliser, replay buffer, env state, rng) is one
  pytree that orbax saves and restores, so a killed run resumes exactly (the replay buffer is in the checkpoint:
  ``max_replay_size * (2 * obs_size + action_size + 3) * 4`` bytes);
- gradient steps start once the buffer holds ``min_replay_size`` transitions (``lax.cond``; before that an
  iteration only collects with the initial policy, like brax's prefill).

SAC runs on one device: its update is sequential in small batches, and its rollout batch (32 envs in the paper) is
too small to be worth splitting; use PPO to split a large env batch over devices.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Tuple

import flax.struct
import jax
import jax.numpy as jnp
import optax
from brax.envs.base import Env, State
from brax.training import acting, gradients, replay_buffers, types
from brax.training.acme import running_statistics, specs
from brax.training.agents.sac import losses as sac_losses
from brax.training.agents.sac import networks as sac_networks

from vlmrm_jax.envs.wrappers import STEP_METRICS
from vlmrm_jax.errors import VlmrmError, check_positive_int

Metrics = dict[str, jax.Array]
#: Loss metrics of one gradient step (zeros while the replay buffer fills).
LOSS_METRICS = ("critic_loss", "actor_loss", "alpha_loss", "alpha")


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """SAC hyper-parameters (names as in brax's ``sac.train``; defaults: VLM-RM's humanoid SAC where the paper gives
    one, else brax's / stable-baselines3's).

    Attributes:
        num_envs: environments stepped in parallel (paper: 32).
        unroll_length: actor steps per iteration (one jitted call); an iteration is ``num_envs * unroll_length``
            env steps.
        batch_size: transitions per gradient step (paper: 512).
        grad_updates_per_step: gradient steps after each actor step of ``num_envs`` env steps.
        learning_rate: Adam step size of the actor and the critic (paper: 6e-4); alpha uses 3e-4 as in brax.
        discounting: gamma (paper: 0.95).
        tau: Polyak rate of the target critic.
        reward_scaling: multiplier applied to rewards in the critic target.
        min_replay_size: transitions collected before the first gradient step.
        max_replay_size: replay buffer capacity in transitions (FIFO).
        normalize_observations: brax's running mean/std observation normaliser.
        hidden_layer_sizes: MLP widths of the policy and of each Q network (SB3 and brax default: 256, 256).
        episode_length: env steps per episode before truncation (paper: 100).
    """

    num_envs: int = 32
    unroll_length: int = 10
    batch_size: int = 512
    grad_updates_per_step: int = 1
    learning_rate: float = 6e-4
    discounting: float = 0.95
    tau: float = 0.005
    reward_scaling: float = 1.0
    min_replay_size: int = 1024
    max_replay_size: int = 100_000
    normalize_observations: bool = True
    hidden_layer_sizes: Tuple[int, ...] = (256, 256)
    episode_length: int = 100

    def __post_init__(self):
        for name in ("num_envs", "unroll_length", "batch_size", "grad_updates_per_step", "min_replay_size",
                     "max_replay_size", "episode_length"):
            check_positive_int(name, getattr(self, name))
        if self.max_replay_size < max(self.min_replay_size, self.num_envs):
            raise VlmrmError(f"max_replay_size={self.max_replay_size} is smaller than min_replay_size="
                             f"{self.min_replay_size} or num_envs={self.num_envs}; raise max_replay_size")
        if not self.learning_rate > 0:
            raise VlmrmError(f"learning_rate={self.learning_rate!r} must be positive")
        if not 0 < self.discounting <= 1:
            raise VlmrmError(f"discounting={self.discounting!r} must be in (0, 1]")
        if not 0 < self.tau <= 1:
            raise VlmrmError(f"tau={self.tau!r} must be in (0, 1]")

    @property
    def env_steps_per_iteration(self) -> int:
        """Env steps consumed by one SAC iteration: ``num_envs * unroll_length``."""
        return self.num_envs * self.unroll_length


@flax.struct.dataclass
class SACParams:
    """The learned parameters: policy, twin Q, target twin Q, and log alpha (float32 [])."""

    policy: Any
    q: Any
    target_q: Any
    log_alpha: jax.Array


@flax.struct.dataclass
class SACTrainState:
    """Everything a SAC run needs to continue: one pytree, saved and restored whole by orbax.

    Attributes:
        params: :class:`SACParams`.
        policy_optimizer_state, q_optimizer_state, alpha_optimizer_state: optax Adam states.
        normalizer_params: brax running observation statistics.
        buffer_state: brax ``ReplayBufferState`` (data float32 [max_replay_size, transition size], positions, key).
        env_state: the batched env state, leading axis ``num_envs``.
        env_steps: int32 [], env steps consumed so far.
        rng: PRNG key [2] for the next iteration.
    """

    params: SACParams
    policy_optimizer_state: optax.OptState
    q_optimizer_state: optax.OptState
    alpha_optimizer_state: optax.OptState
    normalizer_params: running_statistics.RunningStatisticsState
    buffer_state: replay_buffers.ReplayBufferState
    env_state: State
    env_steps: jax.Array
    rng: jax.Array


class SAC:
    """SAC on a batched, auto-resetting env (see :func:`vlmrm_jax.envs.wrappers.wrap_for_vlm_training`).

    The same interface as :class:`vlmrm_jax.rl.PPO`, so :func:`vlmrm_jax.rl.train` and
    :func:`vlmrm_jax.rl.make_policy_fn` drive either (deterministic policy: the tanh of the Gaussian's mean): ``state = sac.init(rng)``, then
    ``state, metrics = sac.iteration(state)`` repeatedly (both jitted). ``metrics`` are float32 scalars:
    ``reward_mean``, ``reward_std`` over the iteration's env steps, the mean of every entry of
    ``state.info["step_metrics"]`` (as ``env/<name>``), the mean of brax's loss terms over the iteration's gradient
    steps (``critic_loss``, ``actor_loss``, ``alpha_loss``, ``alpha``; 0 before the first one) and
    ``buffer_size`` (transitions in the replay buffer).

    Args:
        env: batched env; ``reset`` takes rngs [num_envs, 2], ``step`` actions [num_envs, action_size] in [-1, 1].
        config: hyper-parameters.
    """

    def __init__(self, env: Env, config: SACConfig):
        self.env = env
        self.config = config
        normalize = running_statistics.normalize if config.normalize_observations else (lambda x, y: x)
        self.networks = sac_networks.make_sac_networks(
            env.observation_size, env.action_size, preprocess_observations_fn=normalize,
            hidden_layer_sizes=config.hidden_layer_sizes)
        self.make_policy = sac_networks.make_inference_fn(self.networks)
        self.policy_optimizer = optax.adam(config.learning_rate)
        self.q_optimizer = optax.adam(config.learning_rate)
        self.alpha_optimizer = optax.adam(3e-4)
        alpha_loss, critic_loss, actor_loss = sac_losses.make_losses(
            self.networks, reward_scaling=config.reward_scaling, discounting=config.discounting,
            action_size=env.action_size)
        self._alpha_update = gradients.gradient_update_fn(alpha_loss, self.alpha_optimizer, pmap_axis_name=None)
        self._critic_update = gradients.gradient_update_fn(critic_loss, self.q_optimizer, pmap_axis_name=None)
        self._actor_update = gradients.gradient_update_fn(actor_loss, self.policy_optimizer, pmap_axis_name=None)
        obs = jnp.zeros((env.observation_size,), jnp.float32)
        zero = jnp.zeros((), jnp.float32)
        dummy = types.Transition(observation=obs, action=jnp.zeros((env.action_size,), jnp.float32), reward=zero,
                                 discount=zero, next_observation=obs,
                                 extras={"state_extras": {"truncation": zero}, "policy_extras": {}})
        self.replay_buffer = replay_buffers.UniformSamplingQueue(
            max_replay_size=config.max_replay_size, dummy_data_sample=dummy,
            sample_batch_size=config.batch_size * config.grad_updates_per_step)
        self.init = jax.jit(self._init)
        self.iteration = jax.jit(self._iteration, donate_argnums=0)

    def _init(self, rng: jax.Array) -> SACTrainState:
        key_policy, key_q, key_env, key_buffer, rng = jax.random.split(rng, 5)
        q = self.networks.q_network.init(key_q)
        params = SACParams(policy=self.networks.policy_network.init(key_policy), q=q, target_q=q,
                           log_alpha=jnp.zeros((), jnp.float32))
        obs_spec = specs.Array((self.env.observation_size,), jnp.dtype("float32"))
        return SACTrainState(
            params=params, policy_optimizer_state=self.policy_optimizer.init(params.policy),
            q_optimizer_state=self.q_optimizer.init(params.q),
            alpha_optimizer_state=self.alpha_optimizer.init(params.log_alpha),
            normalizer_params=running_statistics.init_state(obs_spec),
            buffer_state=self.replay_buffer.init(key_buffer),
            env_state=self.env.reset(jax.random.split(key_env, self.config.num_envs)),
            env_steps=jnp.zeros((), jnp.int32), rng=rng)

    def policy_params(self, state: SACTrainState) -> Tuple[Any, Any]:
        """(normalizer, policy) parameters, the tuple ``make_policy`` takes."""
        return state.normalizer_params, state.params.policy

    def _sgd_step(self, carry, transitions: types.Transition):
        """brax's ``sac.train`` sgd_step: alpha, critic, actor updates, then the Polyak target update."""
        state, key = carry
        key, key_alpha, key_critic, key_actor = jax.random.split(key, 4)
        params = state.params
        alpha_loss, log_alpha, alpha_opt = self._alpha_update(
            params.log_alpha, params.policy, state.normalizer_params, transitions, key_alpha,
            optimizer_state=state.alpha_optimizer_state)
        alpha = jnp.exp(params.log_alpha)
        critic_loss, q, q_opt = self._critic_update(
            params.q, params.policy, state.normalizer_params, params.target_q, alpha, transitions, key_critic,
            optimizer_state=state.q_optimizer_state)
        actor_loss, policy, policy_opt = self._actor_update(
            params.policy, state.normalizer_params, params.q, alpha, transitions, key_actor,
            optimizer_state=state.policy_optimizer_state)
        tau = self.config.tau
        target_q = jax.tree.map(lambda t, p: t * (1 - tau) + p * tau, params.target_q, q)
        state = state.replace(params=SACParams(policy=policy, q=q, target_q=target_q, log_alpha=log_alpha),
                              policy_optimizer_state=policy_opt, q_optimizer_state=q_opt,
                              alpha_optimizer_state=alpha_opt)
        metrics = dict(critic_loss=critic_loss, actor_loss=actor_loss, alpha_loss=alpha_loss,
                       alpha=jnp.exp(log_alpha))
        return (state, key), metrics

    def _train_step(self, state: SACTrainState, key: jax.Array):
        """One actor step of ``num_envs`` envs, its insertion into the buffer, then ``grad_updates_per_step``
        gradient steps (skipped while the buffer holds fewer than ``min_replay_size`` transitions)."""
        config = self.config
        key_act, key_sgd = jax.random.split(key)
        policy = self.make_policy(self.policy_params(state))
        fields = ("truncation",) + ((STEP_METRICS,) if STEP_METRICS in state.env_state.info else ())
        env_state, transitions = acting.actor_step(self.env, state.env_state, policy, key_act, extra_fields=fields)
        step_metrics = transitions.extras["state_extras"].pop(STEP_METRICS, {})
        normalizer_params = running_statistics.update(state.normalizer_params, transitions.observation)
        buffer_state = self.replay_buffer.insert_internal(state.buffer_state, transitions)
        state = state.replace(normalizer_params=normalizer_params, buffer_state=buffer_state, env_state=env_state,
                              env_steps=state.env_steps + config.num_envs)

        def learn(state):
            buffer_state, batch = self.replay_buffer.sample_internal(state.buffer_state)
            batch = jax.tree.map(lambda x: x.reshape((config.grad_updates_per_step, -1) + x.shape[1:]), batch)
            (state, _), metrics = jax.lax.scan(self._sgd_step, (state.replace(buffer_state=buffer_state), key_sgd),
                                               batch)
            return state, {k: jnp.mean(v) for k, v in metrics.items()}

        def wait(state):
            return state, {k: jnp.zeros((), jnp.float32) for k in LOSS_METRICS}

        ready = self.replay_buffer.size(state.buffer_state) >= config.min_replay_size
        state, loss_metrics = jax.lax.cond(ready, learn, wait, state)
        extras = {"reward": transitions.reward, **{f"env/{k}": v for k, v in step_metrics.items()}}
        return state, (loss_metrics, ready, extras)

    def _iteration(self, state: SACTrainState) -> Tuple[SACTrainState, Metrics]:
        key, rng = jax.random.split(state.rng)
        state, (loss_metrics, ready, extras) = jax.lax.scan(
            self._train_step, state, jax.random.split(key, self.config.unroll_length))
        learned = jnp.maximum(jnp.sum(ready), 1)
        metrics = {k: jnp.sum(v) / learned for k, v in loss_metrics.items()}  # mean over steps that learned
        reward = extras.pop("reward")
        metrics.update(reward_mean=jnp.mean(reward), reward_std=jnp.std(reward),
                       buffer_size=self.replay_buffer.size(state.buffer_state).astype(jnp.float32))
        metrics.update({k: jnp.mean(v.astype(jnp.float32)) for k, v in extras.items()})
        return state.replace(rng=rng), metrics
