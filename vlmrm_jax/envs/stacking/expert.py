"""A scripted expert for the stacking tasks: picks and places by reading the cube positions from the observation.

The expert of Di Palo et al. 2023's learning-from-observation experiment (section 4.3): its videos show a task done
well, without its actions. It follows a plan of :data:`~.language.SUBGOALS` ids (by default the task's canonical
decomposition) and moves on when the subgoal holds by the env's ground truth (:meth:`Stacking.subgoal_truth`):

- "The robot is grasping the X object": pick at X's centre (the env grasps the topmost cube under the gripper, so
  X must be clear; in every task's canonical order it is);
- "The X object is on top of the Y object": with X held, place at Y's centre (the env lowers X onto Y's top face);
  with X not held, pick X first.

An expert video (:func:`expert_frames`) shows one camera after every action and during ``pause_substeps`` physics
steps of the expert waiting after it (so a subgoal stays visible for a few frames, as in a real video).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from brax.envs.base import State

from vlmrm_jax.envs.stacking.env import REACH, Stacking
from vlmrm_jax.envs.stacking.language import COLOURS, MAX_SUBGOALS, STACK_PAIRS, SUBGOALS, subgoal_id
from vlmrm_jax.errors import VlmrmError

_NUM_CUBES = len(COLOURS)
#: For every subgoal id: the cube that must be held first ("grasp X": X; "X on Y": X).
_MOVED = np.array([c for c in range(_NUM_CUBES)] + [COLOURS.index(t) for t, _ in STACK_PAIRS], np.int32)
#: For every subgoal id: the cube to place on (-1 for a grasp).
_TARGET = np.array([-1] * _NUM_CUBES + [COLOURS.index(b) for _, b in STACK_PAIRS], np.int32)


def expert_action(obs: jax.Array, subgoal: jax.Array) -> jax.Array:
    """The expert's action for ONE observation and the subgoal it pursues (jittable, vmappable).

    Args:
        obs: float32 [16], the stacking observation (cube centres [9] in m, gripper [3], held one-hot [4]).
        subgoal: int32 [], an id into :data:`~.language.SUBGOALS`.

    Returns:
        float32 [2] in [-1, 1]: pick at the cube to move when it is not held; with it held, place at the target
        cube's centre ("X on Y") or put it back where it is (a grasp subgoal is then already reached). Holding
        another cube, the expert places it where it is first (it puts it down).
    """
    pos = obs[:3 * _NUM_CUBES].reshape(_NUM_CUBES, 3)
    held = jnp.argmax(obs[3 * _NUM_CUBES + 3:]) - 1
    moved, target = jnp.asarray(_MOVED)[subgoal], jnp.asarray(_TARGET)[subgoal]
    xy = jnp.where((held == moved) & (target >= 0), pos[jnp.maximum(target, 0), :2], pos[moved, :2])
    xy = jnp.where((held >= 0) & (held != moved), pos[jnp.maximum(held, 0), :2], xy)
    return jnp.clip(xy / REACH, -1.0, 1.0).astype(jnp.float32)


class ExpertEpisode(NamedTuple):
    """One expert episode, leaves [T, ...] (one entry per action).

    Attributes:
        states: the env States after each action.
        action: float32 [T, 2].
        alive: bool [T], the episode had not ended before this action.
        stage: int32 [T], plan subgoals reached after the action (ground truth).
    """

    states: State
    action: jax.Array
    alive: jax.Array
    stage: jax.Array


def plan_ids(env: Stacking, plan=None) -> np.ndarray:
    """The plan as int32 [K] subgoal ids: ``plan`` (captions or ids) or the env task's canonical subgoals.

    Raises:
        VlmrmError: an unknown caption, an id outside [0, 9), or an empty plan.
    """
    plan = env.task.subgoals if plan is None else plan
    ids = np.array([subgoal_id(p) if isinstance(p, str) else int(p) for p in plan], np.int32)
    if ids.size == 0 or ids.min() < 0 or ids.max() >= len(SUBGOALS):
        raise VlmrmError(f"expert plan {list(plan)!r} must be 1 or more subgoal ids in [0, {len(SUBGOALS)}) or "
                         f"captions of SUBGOALS")
    return ids


def padded_plan(env: Stacking, plan=None) -> tuple[np.ndarray, int]:
    """(int32 [MAX_SUBGOALS] plan ids padded with its last id, its length): a traced plan of fixed shape, so one
    compiled :func:`expert_rollout` serves every task."""
    ids = plan_ids(env, plan)
    if len(ids) > MAX_SUBGOALS:
        raise VlmrmError(f"expert plan of {len(ids)} subgoals is longer than {MAX_SUBGOALS}; split the task")
    return np.concatenate([ids, np.full(MAX_SUBGOALS - len(ids), ids[-1], np.int32)]), len(ids)


def expert_rollout(env: Stacking, rng: jax.Array, plan: jax.Array, plan_length: jax.Array | int) -> ExpertEpisode:
    """Plays one expert episode from ``env.reset(rng)``: :func:`expert_episode` from a random start."""
    return expert_episode(env, env.reset(rng), plan, plan_length)


def expert_episode(env: Stacking, start: State, plan: jax.Array, plan_length: jax.Array | int) -> ExpertEpisode:
    """Plays one expert episode from ``start`` (jittable and vmappable; ``plan`` may be traced).

    The episode ends when the plan's last subgoal is reached (ground truth) or when ``info["steps"]`` reaches
    ``env.episode_length`` (the env's own task and reward play no part); ``env.episode_length`` actions are scanned,
    later ones are padding (``alive`` False, the state frozen).

    Args:
        env: the stacking env.
        start: the first state (``env.reset`` or ``env.state_from_positions``).
        plan: int32 [K], subgoal ids (:func:`padded_plan`).
        plan_length: how many of them count (1 .. K).
    """
    plan = jnp.asarray(plan, jnp.int32)
    last = jnp.asarray(plan_length, jnp.int32) - 1

    def step(carry, _):
        state, stage, done = carry
        current = plan[jnp.minimum(stage, last)]
        action = expert_action(state.obs, current)
        new = env.step(state, action)
        new = jax.tree.map(lambda a, b: jnp.where(done, b, a), new, state)
        hit = ~done & env.subgoal_truth(new)[current]
        stage = stage + hit.astype(jnp.int32)
        out = ExpertEpisode(states=new, action=action, alive=~done, stage=stage)
        finished = (stage > last) | (new.info["steps"] >= env.episode_length)
        return (new, stage, done | finished), out

    _, episode = jax.lax.scan(step, (start, jnp.int32(0), jnp.bool_(False)), None, length=env.episode_length)
    return episode


def expert_frames(env: Stacking, rng: jax.Array, *, plan=None, size: int = 128, camera: str | None = None,
                  pause_frames: int = 2, pause_substeps: int = 10, shadows: bool = True):
    """An expert video from one camera: :func:`episode_frames` of one :func:`expert_rollout`.

    Args:
        env: the stacking env.
        rng: PRNG key of the episode's start.
        plan: subgoal captions or ids (default: the env task's canonical subgoals).
        size, camera, pause_frames, pause_substeps, shadows: see :func:`episode_frames`.

    Returns:
        (frames float32 [F, size, size, 3] in [0, 1], truth bool [F, 9], the :class:`ExpertEpisode`).
    """
    ids, length = padded_plan(env, plan)
    start, episode = _rollout_jit(env)(rng, ids, length)
    frames, truth = episode_frames(env, start, episode, size=size, camera=camera, pause_frames=pause_frames,
                                   pause_substeps=pause_substeps, shadows=shadows)
    return frames, truth, episode


def episode_frames(env: Stacking, start: State, episode: ExpertEpisode, *, size: int = 128,
                   camera: str | None = None, pause_frames: int = 2, pause_substeps: int = 10,
                   shadows: bool = True):
    """The video of ONE expert episode from one camera (eager driver over compiled pieces, cached per env and size).

    Frames: the start, then after every live action 1 + ``pause_frames`` frames: the state right after the action,
    then after each further ``pause_substeps`` physics steps of the expert waiting (gripper still).

    Args:
        env: the stacking env.
        start: the episode's first state.
        episode: leaves [T, ...] (one episode of :func:`expert_rollout`).
        size: frame side in pixels.
        camera: one of ``camera.CAMERAS`` (default the first).
        pause_frames, pause_substeps: the waiting frames after each action.
        shadows: ray-traced shadows.

    Returns:
        (frames float32 [F, size, size, 3] in [0, 1], truth bool [F, 9]: the ground-truth subgoals of each frame's
        state).
    """
    render, settle, truth_fn = _render_jit(env, size, camera, shadows, pause_substeps)
    states = [start]
    for t in range(int(np.asarray(episode.alive).sum())):
        state = jax.tree.map(lambda x: x[t], episode.states)
        states.append(state)
        for _ in range(pause_frames):
            state = settle(state)
            states.append(state)
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *states)
    return np.asarray(render(stacked)), np.asarray(truth_fn(stacked))


_CACHE: dict = {}


def _rollout_jit(env: Stacking):
    key = ("rollout", id(env))
    if key not in _CACHE:
        _CACHE[key] = jax.jit(lambda rng, plan, length: (env.reset(rng), expert_rollout(env, rng, plan, length)))
    return _CACHE[key]


def _render_jit(env: Stacking, size: int, camera: str | None, shadows: bool, pause_substeps: int):
    key = ("render", id(env), size, camera, shadows, pause_substeps)
    if key not in _CACHE:
        render = env.make_render_fn(size, size, shadows=shadows, camera=camera)
        _CACHE[key] = (jax.jit(jax.vmap(render)), jax.jit(lambda s: env.settle(s, pause_substeps)),
                       jax.jit(jax.vmap(env.subgoal_truth)))
    return _CACHE[key]


__all__ = ["ExpertEpisode", "episode_frames", "expert_action", "expert_episode", "expert_frames", "expert_rollout", "padded_plan",
           "plan_ids"]
