"""Reward landscapes of the CLIP reward (CartPole, MountainCar) and its EPIC distance to the true reward.

VLM-RM (Rocamonde et al. 2023, section 4.2) checks that the CLIP reward has the right shape on the classic tasks
before trusting it on the humanoid: it plots the CLIP reward against the state variable that matters (pole angle and
cart position; car position) for several goal-baseline strengths alpha, and reports the EPIC distance (Gleave et al.
2020) between the CLIP reward and the ground-truth reward.

The sweep is a grid over the swept state variables (:class:`SweepAxis`, first axis slowest), with every other state
variable at rest (velocities 0, as the authors' landscape). One jitted pass renders every grid state with the env's
own renderer, embeds the frames with CLIP once and scores the embeddings with one :class:`GoalBaselineReward` per
alpha (:func:`make_landscape_fn`), so the landscape is exactly the reward PPO trains on.

EPIC (:func:`epic_per_alpha`) uses the grid as the coverage distribution, with states represented by their index
into the grid:

* D_S: uniform over the grid states (the swept box, velocities 0); D_A: uniform on the action box [-1, 1];
* transitions (s, a, s'): s' runs over every grid state once, s is an independent uniform grid state, a ~ D_A;
  the M = N shaping samples (S_j, A_j) are every grid state with an independent action;
* CLIP reward R(s, a, s') = the CLIP reward of the rendered next state s'; true reward R(s, a, s') = the env's
  reward for arriving in s' with action a (CartPole: 1 while upright; MountainCar: 100 at the flag minus 0.1 a^2).

Both rewards depend on (a, s') only, so the canonicalisation removes their mean and EPIC is the Pearson distance
of the two over D (whatever gamma): 0 = the same reward up to scale and offset, ~0.707 = uncorrelated.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from brax.envs.base import Env

from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.eval import epic
from vlmrm_jax.rewards import GoalBaselineReward

#: Discount factor of EPIC's canonicalisation; the result does not depend on it here (both rewards are functions
#: of (a, s') only), 0.99 is Gleave et al.'s usual value.
EPIC_GAMMA = 0.99


@dataclasses.dataclass(frozen=True)
class SweepAxis:
    """One swept state variable: ``points`` evenly spaced values from ``low`` to ``high`` (both included).

    Attributes:
        name: the variable's name, e.g. "pole_angle".
        low, high: the range, in ``unit``; ``low < high``.
        points: number of values, >= 2.
        unit: unit of the values ("m", "rad", "world units").

    Raises:
        VlmrmError: on an empty range (``low >= high``, non-finite ends) or fewer than 2 points.
    """

    name: str
    low: float
    high: float
    points: int
    unit: str = ""

    def __post_init__(self):
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low >= self.high:
            raise VlmrmError(f"sweep range of {self.name} is empty ({self.low}..{self.high}); pass LOW < HIGH, e.g. "
                             f"--sweep {self.name}={self.low if math.isfinite(self.low) else -1}:"
                             f"{self.low + 1 if math.isfinite(self.low) else 1}:{max(self.points, 2)}")
        if not isinstance(self.points, (int, np.integer)) or isinstance(self.points, bool) or self.points < 2:
            raise VlmrmError(f"sweep of {self.name} has {self.points!r} points; pass at least 2, e.g. "
                             f"--sweep {self.name}={self.low}:{self.high}:50")

    def values(self) -> np.ndarray:
        """The swept values, float32 [points]."""
        return np.linspace(self.low, self.high, self.points, dtype=np.float32)


class LandscapeTask(NamedTuple):
    """How to sweep one env: its swept variables, the paper's prompts, grid states and the true reward.

    Attributes:
        env: registered env name.
        axes: the default sweep, one :class:`SweepAxis` per swept variable (the full state box).
        prompt: the paper's goal prompt.
        baseline_prompt: the paper's baseline prompt.
        make_state: ``(env, template pipeline_state, values float32 [K]) -> pipeline_state`` of one grid point, with
            the unswept variables at rest; jittable.
        true_reward: ``(env, next pipeline_state, action float32 [1]) -> float32 []``, the env's reward for arriving
            in that state with that action; jittable.
    """

    env: str
    axes: tuple[SweepAxis, ...]
    prompt: str
    baseline_prompt: str
    make_state: Callable
    true_reward: Callable


def sweep_grid(axes: Sequence[SweepAxis]) -> np.ndarray:
    """Every combination of the axes' values, the first axis slowest.

    Returns:
        float32 [N, K], N = product of the axes' points, K = len(axes); row ``i`` is one grid state's values.
    """
    mesh = np.meshgrid(*[a.values() for a in axes], indexing="ij")
    return np.stack([m.reshape(-1) for m in mesh], axis=-1).astype(np.float32)


def grid_states(task: LandscapeTask, env: Env, grid: jax.Array):
    """The env states (``State.pipeline_state``, batched) of the grid points; jittable.

    Args:
        task: the env's :class:`LandscapeTask`.
        env: the env (e.g. ``make_env("mountain_car", look="flat")``).
        grid: float32 [N, K], as :func:`sweep_grid`.

    Returns:
        the env's pipeline state with leading axis N (velocities 0, everything else as after a reset).
    """
    template = env.reset(jax.random.PRNGKey(0))
    return jax.vmap(lambda values: task.make_state(env, template.pipeline_state, values))(grid)


def make_landscape_fn(task: LandscapeTask, env: Env, render_fn: Callable, embed_fn: Callable,
                      rewards: Sequence[GoalBaselineReward], *, batch_size: int = 64) -> Callable:
    """A jitted sweep: grid values -> the CLIP reward of each rendered grid state for every alpha, and the true reward.

    Each grid state is rendered by ``render_fn`` (the env's own ``make_render_fn``, as in training), embedded once
    by ``embed_fn`` in chunks of ``batch_size`` frames (``jax.lax.map``, bounding memory), and scored by every
    reward of ``rewards`` (VLM-RM's Definition 1, one per alpha).

    Args:
        task: the env's :class:`LandscapeTask`.
        env: the env the renderer belongs to.
        render_fn: ``State -> float32 [H, W, 3]`` for one state (``env.make_render_fn(size, size)``).
        embed_fn: ``float32 [B, H, W, 3] -> float32 [B, D]`` (e.g. ``lambda x: clip.embed_images(clip.params, x)``).
        rewards: A goal-baseline rewards, e.g. one per alpha, from the same prompt embeddings.
        batch_size: frames rendered and embedded at once.

    Returns:
        ``sweep(grid float32 [N, K]) -> (clip_rewards float32 [A, N], true_rewards float32 [N])``; the true
        reward is the env's reward for arriving in the grid state with action 0.

    Raises:
        VlmrmError: on an empty ``rewards`` or a non-positive ``batch_size``.
    """
    rewards = list(rewards)
    if not rewards:
        raise VlmrmError("no rewards to sweep; pass at least one alpha")
    if batch_size <= 0:
        raise VlmrmError(f"batch_size={batch_size} must be a positive number of frames")
    template = env.reset(jax.random.PRNGKey(0))
    no_action = jnp.zeros((env.action_size,), jnp.float32)

    def frame(values):
        pipeline_state = task.make_state(env, template.pipeline_state, values)
        return render_fn(template.replace(pipeline_state=pipeline_state)), task.true_reward(env, pipeline_state,
                                                                                          no_action)

    def chunk(values):  # [batch_size, K] -> embeddings [batch_size, D], true rewards [batch_size]
        frames, true_rewards = jax.vmap(frame)(values)
        return embed_fn(frames), true_rewards

    @jax.jit
    def sweep(grid):
        grid = jnp.asarray(grid, jnp.float32)
        n = grid.shape[0]
        chunks = -(-n // batch_size)
        padded = jnp.concatenate([grid, jnp.broadcast_to(grid[-1:], (chunks * batch_size - n, grid.shape[1]))])
        embeddings, true_rewards = jax.lax.map(chunk, padded.reshape(chunks, batch_size, -1))
        embeddings = embeddings.reshape(chunks * batch_size, -1)[:n]
        return jnp.stack([reward(embeddings) for reward in rewards]), true_rewards.reshape(-1)[:n]

    return sweep


class CoverageSamples(NamedTuple):
    """EPIC's samples over a grid of N states, states given as int32 indices into the grid.

    Attributes:
        transitions: N transitions; ``next_state`` is every grid index once, ``state`` independent uniform
            indices, ``action`` float32 [N, action_size] uniform in [-1, 1].
        shaping: M = N shaping samples; ``state`` every grid index, ``action`` independent uniform actions.
    """

    transitions: epic.Transitions
    shaping: epic.ShapingSamples


def coverage_samples(num_states: int, action_size: int, key: jax.Array) -> CoverageSamples:
    """Draws the coverage distribution of :func:`epic_per_alpha` (see the module docstring).

    Args:
        num_states: N, the number of grid states (states are int32 indices in [0, N)).
        action_size: the env's action dimension.
        key: PRNG key.

    Returns:
        :class:`CoverageSamples` with N transitions and M = N shaping samples.

    Raises:
        VlmrmError: if there are fewer than 2 grid states.
    """
    if num_states < 2:
        raise VlmrmError(f"EPIC needs at least 2 grid states, got {num_states}; sweep more points")
    k_state, k_action, k_shaping = jax.random.split(key, 3)
    every = jnp.arange(num_states, dtype=jnp.int32)
    action = lambda k: jax.random.uniform(k, (num_states, action_size), jnp.float32, -1.0, 1.0)  # noqa: E731
    transitions = epic.Transitions(state=jax.random.randint(k_state, (num_states,), 0, num_states, jnp.int32),
                                   action=action(k_action), next_state=every)
    return CoverageSamples(transitions, epic.ShapingSamples(state=every, action=action(k_shaping)))


def epic_per_alpha(task: LandscapeTask, env: Env, grid: jax.Array, clip_rewards: jax.Array, key: jax.Array, *,
                   gamma: float = EPIC_GAMMA, batch_size: int | None = 256) -> np.ndarray:
    """EPIC distance (Gleave et al. 2020) between the CLIP reward at each alpha and the env's true reward.

    The rewards are functions of (s, a, s') over the grid (:func:`coverage_samples`): the CLIP reward is the swept
    reward of s' (a lookup into ``clip_rewards``), the true reward is ``task.true_reward`` of the grid state s' and
    the action a. Both are evaluated and compared by :mod:`vlmrm_jax.eval.epic` (``evaluate_reward``,
    ``epic_distance_from_tensors``).

    Args:
        task: the env's :class:`LandscapeTask`.
        env: the env.
        grid: float32 [N, K], the swept grid (:func:`sweep_grid`).
        clip_rewards: float32 [A, N], the CLIP reward of each grid state per alpha (:func:`make_landscape_fn`).
        key: PRNG key of the coverage samples.
        gamma: canonicalisation discount in [0, 1] (no effect on the result here; see the module docstring).
        batch_size: grid rows evaluated at once (bounds the N x N evaluation's memory).

    Returns:
        float64 [A]: the EPIC distance per alpha, in [0, 1] (NaN where a reward is constant over the grid).

    Raises:
        VlmrmError: on mismatched shapes, fewer than 2 grid states, or gamma outside [0, 1].
    """
    grid = jnp.asarray(grid, jnp.float32)
    clip_rewards = jnp.asarray(clip_rewards, jnp.float32)
    if clip_rewards.ndim != 2 or clip_rewards.shape[1] != grid.shape[0]:
        raise VlmrmError(f"clip_rewards {clip_rewards.shape} must be [alphas, {grid.shape[0]}] (one per grid state)")
    samples = coverage_samples(grid.shape[0], env.action_size, key)

    def true_reward(states, s, a, next_s):
        del s
        next_states = jax.tree.map(lambda x: x[next_s], states)
        return jax.vmap(lambda state, action: task.true_reward(env, state, action))(next_states, a)

    @jax.jit  # arrays as arguments, not closed-over constants, so that XLA does not constant-fold N x N grids
    def true_tensors(grid, samples):
        states = grid_states(task, env, grid)
        return epic.evaluate_reward(functools.partial(true_reward, states), samples.transitions, samples.shaping,
                                    batch_size=batch_size)

    @jax.jit
    def distance(table, samples, truth):
        clip = epic.evaluate_reward(lambda s, a, next_s: table[next_s], samples.transitions, samples.shaping,
                                    batch_size=batch_size)
        return epic.epic_distance_from_tensors(clip, truth, gamma)

    truth = true_tensors(grid, samples)
    return np.asarray([float(distance(table, samples, truth)) for table in clip_rewards], np.float64)
