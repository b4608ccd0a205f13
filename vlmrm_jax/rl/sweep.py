"""Many VLM-RM PPO runs as one jitted program: a sweep over seeds x reward variants (e.g. alphas), vmapped over a
leading run axis and sharded over devices (PureJaxRL's ``jax.jit(jax.vmap(train))``, Lu et al. 2022).

VLM-RM's results are sweeps (Rocamonde et al. 2023: several seeds per alpha and per CLIP size). Instead of a
Python loop of R runs, :class:`SweepPPO` stacks the R runs' whole :class:`~vlmrm_jax.rl.TrainState` along a
leading axis and maps one single-run PPO over it with ``jax.vmap``: one compile, one dispatch per iteration, and
the R rollouts' rendering and CLIP calls batched together. What differs between runs is traced, not baked in: the
per-run reward parameters (a :meth:`GoalBaselineReward.stack`-ed reward: goal, baseline and the projection, whose
alpha is per run) and the per-run seeds. The CLIP weights are one argument shared by all runs (as in
:class:`vlmrm_jax.pipeline.VLMPPO`: arguments are buffers, closed-over arrays would be compiled-in constants).

With several devices the run axis is split over a 1-D mesh (``PartitionSpec("runs")``): each device trains R / n
whole runs, and the runs never exchange data. Inside a run nothing is sharded (a single-device PPO).

Cost: one compile for all R runs (cartpole-clip-tiny, 16 envs, R = 4 on the 2-core CPU at load 8-12: 75 s
against 52 s for each single run). Under ``vmap`` a ``lax.cond`` whose predicate differs per run runs both
branches, so :class:`~vlmrm_jax.envs.wrappers.FreshResetWrapper`'s batched reset is computed at every step instead
of once per episode (cheap for the classic envs; an extra ``reset`` per step for the MJX envs).

Shapes use ``R`` = runs, ``B = num_envs``.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Callable, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from brax.envs.base import Env

from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.rewards import GoalBaselineReward
from vlmrm_jax.rl.ppo import PPO, Metrics, PPOConfig, TrainState

#: Name of the mesh axis the runs are split over.
RUNS_AXIS = "runs"


@flax.struct.dataclass
class SweepState:
    """The state of R PPO runs trained together: one pytree, saved and restored whole by orbax.

    Attributes:
        runs: the R runs' :class:`~vlmrm_jax.rl.TrainState` stacked, every leaf with a leading axis R (e.g.
            ``runs.env_steps`` int32 [R], ``runs.rng`` uint32 [R, 2]); split over the devices along R.
        env_steps: int32 [], env steps consumed by EACH run so far (all runs advance together).

    ``params`` is ``runs.params`` (leaves [R, ...]), for the trainer's NaN guard.
    """

    runs: TrainState
    env_steps: jax.Array

    @property
    def params(self):
        """The R runs' network parameters, leaves [R, ...]."""
        return self.runs.params


class SweepPPO:
    """R independent VLM-RM PPO runs (one per seed and reward variant) as ONE jitted ``init`` and ``iteration``.

    Run ``i`` is exactly the single run ``PPO(make_env(weights, rewards[i]), config).init(jax.random.fold_in(rng,
    seeds[i]))`` followed by the same iterations (up to float round-off of the batched computation), where ``rng``
    is the key passed to :meth:`init` (the trainer's ``jax.random.PRNGKey(seed)``).

    Args:
        make_env: ``(weights, reward) -> batched training env`` of ONE run whose reward embeds frames with the
            reward model ``weights`` and scores them with ``reward`` (a :class:`GoalBaselineReward`); called inside
            the traced functions with traced values, e.g. ``lambda w, r: wrap_for_vlm_training(env,
            episode_length=..., render_fn=..., embed_fn=functools.partial(clip.embed_images, w), reward=r)``.
        weights: the reward model's weights pytree (e.g. ``clip.params``), shared by all runs (replicated).
        rewards: R rewards, one per run (alphas may differ; same embedding dimension D).
        seeds: R ints in [0, 2**31), one per run.
        config: PPO hyper-parameters, the same for every run.
        devices: devices to split the runs over; default all of ``jax.devices()``.

    Raises:
        VlmrmError: no runs, ``len(rewards) != len(seeds)``, a bad seed, or R not a multiple of the device count.

    Use as a learner of :func:`vlmrm_jax.rl.train` (``train(sweep, total_steps=..., run_dir=...)``: ``total_steps``
    counts env steps of EACH run), or by hand: ``state = sweep.init(rng)``, then ``state, metrics =
    sweep.iteration(state)`` (the state argument is donated). ``metrics`` are float32 scalars: for every metric
    ``name`` of :meth:`PPO.iteration` (``reward_mean``, ``reward_std``, ``env/<name>``, loss terms), ``name`` is
    its mean over the runs and ``run<i>/<name>`` run i's own value.

    Attributes:
        ppo: the single-run PPO (networks, optimiser, config): ``make_policy_fn(sweep.ppo, sweep.run_state(state,
            i))`` is run i's policy. Its own ``init``/``iteration`` would train run 0's reward alone.
        num_runs: R.
        seeds: tuple of the R seeds.
        alphas: tuple of the R rewards' alphas.
        rewards: the stacked rewards (:meth:`GoalBaselineReward.stack`, leaves [R, ...]), on the devices.
        mesh: the 1-D ``jax.sharding.Mesh`` over ``devices`` (axis ``"runs"``; also with one device).
        weights: the reward model's weights, replicated over the mesh.
    """

    def __init__(self, make_env: Callable[[Any, GoalBaselineReward], Env], weights: Any,
                 rewards: Sequence[GoalBaselineReward], seeds: Sequence[int], config: PPOConfig,
                 devices: Sequence[jax.Device] | None = None):
        rewards, seeds = list(rewards), list(seeds)
        if not rewards:
            raise VlmrmError("a sweep needs at least one run; pass one reward and one seed per run")
        if len(rewards) != len(seeds):
            raise VlmrmError(f"{len(rewards)} rewards but {len(seeds)} seeds; pass one reward and one seed per run")
        for seed in seeds:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 31:
                raise VlmrmError(f"seed={seed!r} is not an int in [0, 2**31); pass non-negative integer seeds")
        devices = list(jax.devices() if devices is None else devices)
        self.num_runs = len(rewards)
        if self.num_runs % len(devices):
            raise VlmrmError(f"{self.num_runs} runs do not split over {len(devices)} devices; pass a number of runs "
                             f"(seeds x alphas) that is a multiple of {len(devices)}, or fewer devices")
        self.make_env = make_env
        self.config = config
        self.seeds = tuple(int(s) for s in seeds)
        self.alphas = tuple(float(r.alpha) for r in rewards)
        # Also with one device: every array then has the same (committed) sharding, so a state restored by orbax
        # into ``jax.eval_shape(init)``'s shardings runs the compiled iteration without a recompile.
        self.mesh = jax.sharding.Mesh(np.array(devices), (RUNS_AXIS,))
        self.ppo = PPO(make_env(weights, rewards[0]), config, devices=devices[:1])
        self.weights = jax.device_put(weights, self._sharding())
        self.rewards = jax.device_put(GoalBaselineReward.stack(rewards), self._sharding(RUNS_AXIS))
        seed_array = jax.device_put(jnp.asarray(self.seeds, jnp.uint32), self._sharding(RUNS_AXIS))
        self.init = functools.partial(jax.jit(self._init), self.weights, self.rewards, seed_array)
        self.iteration = functools.partial(jax.jit(self._iteration, donate_argnums=2), self.weights, self.rewards)

    def _sharding(self, *spec: str) -> jax.sharding.NamedSharding:
        return jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec(*spec))

    def _constrain(self, tree: Any, *spec: str) -> Any:
        """Constrains every leaf of ``tree`` to ``PartitionSpec(*spec)`` over the mesh."""
        return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, self._sharding(*spec)), tree)

    def _run_ppo(self, weights: Any, reward: GoalBaselineReward) -> PPO:
        """The single-run PPO with its env rebuilt around (traced) ``weights`` and one run's ``reward``."""
        learner = copy.copy(self.ppo)
        learner.env = self.make_env(weights, reward)
        return learner

    def _init(self, weights: Any, rewards: GoalBaselineReward, seeds: jax.Array, rng: jax.Array) -> SweepState:
        def one(reward, seed):
            return self._run_ppo(weights, reward)._init(jax.random.fold_in(rng, seed))

        # Strong dtypes (brax's normaliser holds a weakly typed float), as orbax restores them: a resumed state then
        # hits the compiled iteration.
        runs = jax.tree.map(lambda x: jax.lax.convert_element_type(x, x.dtype), jax.vmap(one)(rewards, seeds))
        return SweepState(runs=self._constrain(runs, RUNS_AXIS),
                          env_steps=self._constrain(jnp.zeros((), jnp.int32)))

    def _iteration(self, weights: Any, rewards: GoalBaselineReward, state: SweepState) -> tuple[SweepState, Metrics]:
        runs, per_run = jax.vmap(lambda reward, run: self._run_ppo(weights, reward)._iteration(run))(
            rewards, self._constrain(state.runs, RUNS_AXIS))
        metrics = {name: jnp.mean(values) for name, values in per_run.items()}
        metrics.update({f"run{i}/{name}": values[i] for name, values in per_run.items()
                        for i in range(self.num_runs)})
        new_state = SweepState(runs=self._constrain(runs, RUNS_AXIS),
                               env_steps=self._constrain(state.env_steps + self.config.env_steps_per_iteration))
        return new_state, self._constrain(metrics)

    def run_state(self, state: SweepState, i: int) -> TrainState:
        """Run ``i``'s own :class:`~vlmrm_jax.rl.TrainState` (leaves without the run axis), e.g. for
        ``make_policy_fn(sweep.ppo, sweep.run_state(state, i))`` or an evaluation rollout.

        Raises:
            VlmrmError: if ``i`` is not in [0, R).
        """
        i = self._check_index(i)
        return jax.tree.map(lambda x: x[i], state.runs)

    def run_reward(self, i: int) -> GoalBaselineReward:
        """Run ``i``'s reward (its own goal, baseline, projection and alpha).

        Raises:
            VlmrmError: if ``i`` is not in [0, R).
        """
        return self.rewards.unstack()[self._check_index(i)]

    def _check_index(self, i: int) -> int:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < self.num_runs:
            raise VlmrmError(f"run index {i!r} is outside [0, {self.num_runs}); pass 0 .. {self.num_runs - 1}")
        return int(i)

    def policy_params(self, state: SweepState, i: int) -> tuple[Any, Any, Any]:
        """Run ``i``'s (normalizer, policy, value) parameters, the tuple ``sweep.ppo.make_policy`` takes."""
        return self.ppo.policy_params(self.run_state(state, i))
