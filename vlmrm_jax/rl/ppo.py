"""PPO assembled from brax's components, as pure JAX functions (PureJaxRL-style ``init`` / ``iteration``).

The networks, loss, GAE, acting and observation normaliser are brax's own (``brax.training.agents.ppo.networks``,
``.losses``, ``brax.training.acting``, ``brax.training.gradients``, ``running_statistics``); the schedule is brax's
``ppo.train`` training step. What this module changes is the shell around it:

- one jitted call = one PPO iteration (rollout of ``num_envs x unroll_length x unrolls_per_iteration`` env steps,
  then ``num_updates_per_batch`` epochs of ``num_minibatches`` minibatches), so the caller reports progress, checks
  for NaN and writes checkpoints between iterations;
- the whole :class:`TrainState` (optimiser state, parameters, normaliser, env step count, env state and rng) is one
  pytree that orbax saves and restores, so a killed run resumes exactly where its last checkpoint was;
- no separate evaluation env: rendering + CLIP is the expensive part of a VLM-rewarded env, so the metrics come from
  the training rollouts themselves;
- data parallel over devices by sharding, not ``pmap``: with several devices the env batch (and so physics,
  rendering and CLIP) is split along ``num_envs`` over a 1-D mesh, parameters are replicated, and XLA's SPMD
  partitioner inserts the gradient all-reduce. The same jitted program runs on one CPU, one GPU or a TPU pod slice;
  on several hosts (one process each, :mod:`vlmrm_jax.rl.distributed`) the mesh spans all processes' devices, and
  everything but the env state (parameters, optimiser state, step count, rng, metrics) is replicated on every device,
  so each process reads it locally.

Shapes use ``B = num_envs``, ``T = unroll_length``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence, Tuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from brax.envs.base import Env, State
from brax.training import acting, gradients, types
from brax.training.acme import running_statistics, specs
from brax.training.agents.ppo import losses as ppo_losses
from brax.training.agents.ppo import networks as ppo_networks

from vlmrm_jax.envs.wrappers import STEP_METRICS
from vlmrm_jax.errors import VlmrmError

Metrics = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO hyper-parameters (names as in brax's ``ppo.train``).

    Attributes:
        num_envs: environments stepped in parallel (batch of the rollout).
        unroll_length: env steps per unroll ``T`` (the GAE horizon of one trajectory segment).
        batch_size: unrolls per minibatch.
        num_minibatches: minibatches per epoch; ``batch_size * num_minibatches`` must be a multiple of ``num_envs``.
        num_updates_per_batch: epochs over the collected batch per iteration.
        learning_rate: Adam step size.
        entropy_cost: weight of the entropy bonus.
        discounting: gamma (VLM-RM used 0.95 for the humanoid).
        gae_lambda: GAE lambda.
        clipping_epsilon: PPO ratio clip.
        reward_scaling: multiplier applied to rewards in the loss.
        max_grad_norm: global-norm gradient clip, or None.
        normalize_observations: running mean/std observation normaliser (brax's).
        policy_hidden_layer_sizes: MLP widths of the policy.
        value_hidden_layer_sizes: MLP widths of the value function.
        episode_length: env steps per episode before truncation.
        action_noise_correlation: rho in [0, 1), the correlation of the exploration noise between successive env
            steps. The policy's pre-tanh action is ``loc + scale * eps_t`` with ``eps_t = rho * eps_{t-1} +
            sqrt(1 - rho^2) * xi_t``, ``xi_t ~ N(0, 1)`` i.i.d. per env and action dimension: an AR(1) process
            (a discretised Ornstein-Uhlenbeck process) whose marginal is N(0, 1), so each action is still drawn from
            the policy's own Gaussian and PPO's ratio uses its usual log-probability (Hollenstein et al. 2024,
            "Colored Noise in PPO"; Eberhard et al. 2023, "Pink Noise Is All You Need"). Successive actions then
            push the same way for about ``1 / (1 - rho)`` steps, which finds sparse goals that need a sustained push
            (MountainCar) where i.i.d. noise averages out. 0 (the default) is brax's i.i.d. sampling, unchanged.
    """

    num_envs: int = 32
    unroll_length: int = 10
    batch_size: int = 32
    num_minibatches: int = 4
    num_updates_per_batch: int = 4
    learning_rate: float = 3e-4
    entropy_cost: float = 1e-3
    discounting: float = 0.95
    gae_lambda: float = 0.95
    clipping_epsilon: float = 0.2
    reward_scaling: float = 1.0
    max_grad_norm: float | None = 1.0
    normalize_observations: bool = True
    policy_hidden_layer_sizes: Tuple[int, ...] = (64, 64)
    value_hidden_layer_sizes: Tuple[int, ...] = (128, 128)
    episode_length: int = 100
    action_noise_correlation: float = 0.0

    def __post_init__(self):
        for name in ("num_envs", "unroll_length", "batch_size", "num_minibatches", "num_updates_per_batch",
                     "episode_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise VlmrmError(f"{name}={value!r} must be a positive integer")
        if (self.batch_size * self.num_minibatches) % self.num_envs:
            raise VlmrmError(f"batch_size * num_minibatches = {self.batch_size * self.num_minibatches} is not a "
                             f"multiple of num_envs={self.num_envs}; choose sizes so that it is (e.g. batch_size = "
                             f"num_envs)")
        if not self.learning_rate > 0:
            raise VlmrmError(f"learning_rate={self.learning_rate!r} must be positive")
        if not 0 < self.discounting <= 1:
            raise VlmrmError(f"discounting={self.discounting!r} must be in (0, 1]")
        if not self.entropy_cost >= 0:
            raise VlmrmError(f"entropy_cost={self.entropy_cost!r} must be non-negative")
        if not 0 <= self.action_noise_correlation < 1:
            raise VlmrmError(f"action_noise_correlation={self.action_noise_correlation!r} must be in [0, 1) (0: i.i.d. "
                             f"noise; 0.9: successive actions' noise correlated 0.9)")

    @property
    def unrolls_per_iteration(self) -> int:
        """Unrolls of ``num_envs`` environments collected per iteration."""
        return self.batch_size * self.num_minibatches // self.num_envs

    @property
    def env_steps_per_iteration(self) -> int:
        """Env steps consumed by one PPO iteration: ``batch_size * num_minibatches * unroll_length``."""
        return self.batch_size * self.num_minibatches * self.unroll_length


@flax.struct.dataclass
class TrainState:
    """Everything a PPO run needs to continue: one pytree, saved and restored whole by orbax.

    Attributes:
        params: brax ``PPONetworkParams`` (policy, value).
        optimizer_state: optax state of Adam (and the gradient clip).
        normalizer_params: brax running observation statistics.
        env_state: the batched env state, leading axis ``num_envs``.
        env_steps: int32 [], env steps consumed so far.
        rng: PRNG key [2] for the next iteration.
        action_noise: float32 [num_envs, action_size], each env's exploration noise ``eps`` of its last step (see
            ``PPOConfig.action_noise_correlation``; unused when that is 0).
    """

    params: ppo_losses.PPONetworkParams
    optimizer_state: optax.OptState
    normalizer_params: running_statistics.RunningStatisticsState
    env_state: State
    env_steps: jax.Array
    rng: jax.Array
    action_noise: jax.Array


class PPO:
    """PPO on a batched, auto-resetting env (see :func:`vlmrm_jax.envs.wrappers.wrap_for_vlm_training`).

    Args:
        env: batched env; ``reset`` takes rngs [num_envs, 2], ``step`` actions [num_envs, action_size].
        config: hyper-parameters.
        devices: devices to split the env batch over (data parallel); default all of ``jax.devices()``. With one
            device nothing is sharded.

    Raises:
        VlmrmError: if ``num_envs`` is not a multiple of the number of devices.

    Use ``state = ppo.init(rng)``, then ``state, metrics = ppo.iteration(state)`` repeatedly (both jitted).
    ``metrics`` are float32 scalars: ``reward_mean``, ``reward_std`` over the rollout's env steps, the rollout mean of
    every entry of ``state.info["step_metrics"]`` when the env provides it (as ``env/<name>``), and brax's loss terms (``total_loss``, ``policy_loss``,
    ``v_loss``, ``entropy_loss``).
    """

    def __init__(self, env: Env, config: PPOConfig, devices: Sequence[jax.Device] | None = None):
        self.env = env
        self.config = config
        devices = list(jax.devices() if devices is None else devices)
        if config.num_envs % len(devices):
            raise VlmrmError(f"num-envs={config.num_envs} does not split over {len(devices)} devices; pass a "
                             f"multiple of {len(devices)}")
        self.mesh = jax.sharding.Mesh(np.array(devices), ("batch",)) if len(devices) > 1 else None
        normalize = running_statistics.normalize if config.normalize_observations else (lambda x, y: x)
        self.networks = ppo_networks.make_ppo_networks(
            env.observation_size, env.action_size, preprocess_observations_fn=normalize,
            policy_hidden_layer_sizes=config.policy_hidden_layer_sizes,
            value_hidden_layer_sizes=config.value_hidden_layer_sizes)
        self.make_policy = ppo_networks.make_inference_fn(self.networks)
        clip = [optax.clip_by_global_norm(config.max_grad_norm)] if config.max_grad_norm else []
        self.optimizer = optax.chain(*clip, optax.adam(config.learning_rate))
        loss_fn = functools.partial(
            ppo_losses.compute_ppo_loss, ppo_network=self.networks, entropy_cost=config.entropy_cost,
            discounting=config.discounting, reward_scaling=config.reward_scaling, gae_lambda=config.gae_lambda,
            clipping_epsilon=config.clipping_epsilon, normalize_advantage=True)
        self._update = gradients.gradient_update_fn(loss_fn, self.optimizer, pmap_axis_name=None, has_aux=True)
        self.init = jax.jit(self._init)
        self.iteration = jax.jit(self._iteration, donate_argnums=0)

    def _init(self, rng: jax.Array) -> TrainState:
        key_policy, key_value, key_env, rng = jax.random.split(rng, 4)
        key_noise = jax.random.fold_in(key_env, 1)  # a fifth split would change every i.i.d.-noise run's draws
        params = ppo_losses.PPONetworkParams(policy=self.networks.policy_network.init(key_policy),
                                             value=self.networks.value_network.init(key_value))
        env_state = self._shard_batch(self.env.reset(jax.random.split(key_env, self.config.num_envs)))
        obs_spec = specs.Array((self.env.observation_size,), jnp.dtype("float32"))
        return self._replicate_all_but_env(TrainState(
            params=params, optimizer_state=self.optimizer.init(params),
            normalizer_params=running_statistics.init_state(obs_spec), env_state=env_state,
            env_steps=jnp.zeros((), jnp.int32), rng=rng,
            action_noise=self._shard_batch(jax.random.normal(key_noise, (self.config.num_envs, self.env.action_size)))))

    def _shard_batch(self, tree: Any) -> Any:
        """Constrains every leaf with a leading ``num_envs`` axis to be split over the mesh (no-op on one device)."""
        if self.mesh is None:
            return tree
        split = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec("batch"))
        return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, split)
                            if x.ndim and x.shape[0] == self.config.num_envs else x, tree)

    def _replicate_all_but_env(self, state: TrainState) -> TrainState:
        """Constrains every leaf of ``state`` but the env state and the action noise (both split over envs) to be
        replicated on all devices (no-op on one device): with several processes (:mod:`vlmrm_jax.rl.distributed`) each one then holds the whole parameters,
        step count and rng, and reads them (``int``, ``float``, checkpoints) without a cross-host gather."""
        if self.mesh is None:
            return state
        return self._replicate(state.replace(env_state=None, action_noise=None)).replace(
            env_state=state.env_state, action_noise=state.action_noise)

    def _replicate(self, tree: Any) -> Any:
        """Constrains every leaf of ``tree`` to be replicated over the mesh (no-op on one device)."""
        if self.mesh is None:
            return tree
        everywhere = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
        return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, everywhere), tree)

    def policy_params(self, state: TrainState) -> Tuple[Any, Any, Any]:
        """(normalizer, policy, value) parameters, the tuple ``make_policy`` takes."""
        return state.normalizer_params, state.params.policy, state.params.value

    def _rollout(self, state: TrainState, key: jax.Array):
        """Collects ``unrolls_per_iteration`` unrolls; returns the new env state, the last steps' exploration noise
        and Transitions [N*B, T, ...]."""
        fields = ("truncation",) + ((STEP_METRICS,) if STEP_METRICS in state.env_state.info else ())
        rho = self.config.action_noise_correlation
        if rho:
            distribution = self.networks.parametric_action_distribution

            def actor_step(carry, key):  # brax's acting.actor_step, with the noise eps carried between steps
                env_state, noise = carry
                noise = rho * noise + np.sqrt(1 - rho ** 2) * jax.random.normal(key, noise.shape)
                logits = self.networks.policy_network.apply(state.normalizer_params, state.params.policy,
                                                            env_state.obs)
                gaussian = distribution.create_dist(logits)
                raw_action = gaussian.loc + gaussian.scale * noise
                next_state = self.env.step(env_state, distribution.postprocess(raw_action))
                policy_extras = {"log_prob": distribution.log_prob(logits, raw_action), "raw_action": raw_action,
                                 "distribution_params": logits}
                return (next_state, noise), types.Transition(
                    observation=env_state.obs, action=raw_action, reward=next_state.reward,
                    discount=1 - next_state.done, next_observation=next_state.obs,
                    extras={"policy_extras": policy_extras,
                            "state_extras": {x: next_state.info[x] for x in fields}})

            def unroll(carry, key):
                return jax.lax.scan(actor_step, carry, jax.random.split(key, self.config.unroll_length))
        else:
            policy = self.make_policy(self.policy_params(state))

            def unroll(carry, key):
                env_state, data = acting.generate_unroll(self.env, carry[0], policy, key, self.config.unroll_length,
                                                         extra_fields=fields)
                return (env_state, carry[1]), data

        keys = jax.random.split(key, self.config.unrolls_per_iteration)
        (env_state, noise), data = jax.lax.scan(unroll, (state.env_state, state.action_noise), keys)  # [N, T, B, ...]
        env_state, noise = self._shard_batch((env_state, noise))
        data = jax.tree.map(lambda x: jnp.swapaxes(x, 1, 2).reshape((-1,) + x.shape[1:2] + x.shape[3:]), data)
        return env_state, noise, data

    def _iteration(self, state: TrainState) -> Tuple[TrainState, Metrics]:
        config = self.config
        key_rollout, key_sgd, rng = jax.random.split(state.rng, 3)
        env_state, action_noise, data = self._rollout(state, key_rollout)
        normalizer_params = running_statistics.update(state.normalizer_params, data.observation)

        def minibatch_step(carry, minibatch):
            optimizer_state, params, key = carry
            key, key_loss = jax.random.split(key)
            (_, metrics), params, optimizer_state = self._update(
                params, normalizer_params, minibatch, key_loss, optimizer_state=optimizer_state)
            return (optimizer_state, params, key), metrics

        def epoch(carry, _):
            optimizer_state, params, key = carry
            key, key_perm, key_grad = jax.random.split(key, 3)
            shuffled = jax.tree.map(
                lambda x: jax.random.permutation(key_perm, x).reshape((config.num_minibatches, -1) + x.shape[1:]),
                data)
            (optimizer_state, params, _), metrics = jax.lax.scan(
                minibatch_step, (optimizer_state, params, key_grad), shuffled)
            return (optimizer_state, params, key), metrics

        (optimizer_state, params, _), loss_metrics = jax.lax.scan(
            epoch, (state.optimizer_state, state.params, key_sgd), None, length=config.num_updates_per_batch)
        metrics = {k: jnp.mean(v) for k, v in loss_metrics.items()}
        metrics.update(reward_mean=jnp.mean(data.reward), reward_std=jnp.std(data.reward))
        step_metrics = data.extras["state_extras"].get(STEP_METRICS, {})
        metrics.update({f"env/{k}": jnp.mean(v.astype(jnp.float32)) for k, v in step_metrics.items()})
        new_state = TrainState(params=params, optimizer_state=optimizer_state, normalizer_params=normalizer_params,
                               env_state=env_state, env_steps=state.env_steps + config.env_steps_per_iteration,
                               rng=rng, action_noise=action_noise)
        return self._replicate_all_but_env(new_state), self._replicate(metrics)


def make_policy_fn(ppo: PPO, state: TrainState, deterministic: bool = True) -> Callable:
    """The trained policy as ``policy(obs float32 [..., obs_size], key) -> (action float32 [..., action_size], extras)``."""
    return ppo.make_policy(ppo.policy_params(state), deterministic=deterministic)
