"""Ground truth of the stacking tasks (Di Palo et al. 2023): pure JAX predicates on one ``mjx.Data``.

Cube ``i`` (``COLOURS[i]``: red, green, blue) is the i-th free joint of the scene: position ``qpos[7i:7i+3]`` (m,
world frame, the cube's centre) and linear velocity ``qvel[6i:6i+3]`` (m/s). The gripper is mocap body 0
(``mocap_pos[0]``) and a grasp is weld equality ``i`` (``eq_active[i]``). Predicates read ``qpos``/``qvel``, which are
current after ``mjx.step`` (``xpos`` lags one physics step behind them).

Thresholds (metres, m/s), named so that the docs and the caption source can quote them:

* :data:`GRASP_DISTANCE`: a cube is grasped when its weld is on and its centre is within this of its grasp pose
  (``GRIP_OFFSET`` below the gripper's origin), i.e. it really hangs in the gripper.
* :data:`RESTING_SPEED`: a cube rests when its centre moves slower than this.
* ``on_top_of(X, Y)``: X rests, is not grasped, the horizontal distance between the centres is below
  :data:`ON_TOP_XY` (X's centre is over Y's top face) and X's centre is one cube edge above Y's within
  :data:`ON_TOP_DZ`.

Tasks (``language.TASKS``): "grasp X" holds when ``grasping(X)``; "stack X on Y" when ``on_top_of(X, Y)``; an ordered
tower (bottom, middle, top) when middle is on bottom and top on middle; "stack all three objects" when any of the
six towers stands.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
from mujoco import mjx

from vlmrm_jax.envs.stacking.language import COLOURS, STACK_PAIRS, Task, get_task
from vlmrm_jax.envs.stacking.scene import CUBE_HALF, GRIP_OFFSET
from vlmrm_jax.errors import VlmrmError

#: A grasped cube's centre is within this distance (m) of its grasp pose under the gripper.
GRASP_DISTANCE = 0.02
#: A cube rests when the speed of its centre is below this (m/s).
RESTING_SPEED = 0.05
#: On top: horizontal distance between the two cubes' centres below this (m): half an edge.
ON_TOP_XY = CUBE_HALF
#: On top: the upper centre is 2 * CUBE_HALF (one edge) above the lower one within this (m).
ON_TOP_DZ = 0.01

_NUM_CUBES = len(COLOURS)
#: The six orders (bottom, middle, top) of a three-cube tower, as cube indices.
TOWERS: tuple[tuple[int, int, int], ...] = tuple(itertools.permutations(range(_NUM_CUBES), 3))


def cube_index(cube: str | int) -> int:
    """The cube index of a colour name (``"red"`` -> 0) or an index in range.

    Raises:
        VlmrmError: on an unknown colour or an index outside [0, 3).
    """
    if isinstance(cube, str):
        if cube not in COLOURS:
            raise VlmrmError(f"unknown colour {cube!r}; the cubes are {', '.join(COLOURS)}")
        return COLOURS.index(cube)
    if not 0 <= int(cube) < _NUM_CUBES:
        raise VlmrmError(f"cube index {cube!r} out of range; use 0..{_NUM_CUBES - 1} or one of {COLOURS}")
    return int(cube)


def cube_positions(data: mjx.Data) -> jax.Array:
    """float32 [3, 3]: the cubes' centres (m, world), in COLOURS order."""
    return data.qpos[:7 * _NUM_CUBES].reshape(_NUM_CUBES, 7)[:, :3]


def cube_speeds(data: mjx.Data) -> jax.Array:
    """float32 [3]: the speed of each cube's centre (m/s)."""
    return jnp.linalg.norm(data.qvel[:6 * _NUM_CUBES].reshape(_NUM_CUBES, 6)[:, :3], axis=-1)


def gripper_position(data: mjx.Data) -> jax.Array:
    """float32 [3]: the gripper's origin (m, world): the mocap target."""
    return data.mocap_pos[0]


def grasped_mask(data: mjx.Data) -> jax.Array:
    """bool [3]: ``grasping`` for every cube."""
    grasp_pose = gripper_position(data) - jnp.array([0.0, 0.0, GRIP_OFFSET])
    near = jnp.linalg.norm(cube_positions(data) - grasp_pose, axis=-1) < GRASP_DISTANCE
    return data.eq_active[:_NUM_CUBES].astype(bool) & near


def on_top_matrix(data: mjx.Data) -> jax.Array:
    """bool [3, 3]: entry [x, y] is ``on_top_of(x, y)`` (False on the diagonal)."""
    pos = cube_positions(data)
    offset = pos[:, None, :] - pos[None, :, :]  # [top, bottom, 3]
    xy_close = jnp.linalg.norm(offset[..., :2], axis=-1) < ON_TOP_XY
    one_edge_above = jnp.abs(offset[..., 2] - 2 * CUBE_HALF) < ON_TOP_DZ
    top_ok = (cube_speeds(data) < RESTING_SPEED) & ~grasped_mask(data)
    return xy_close & one_edge_above & top_ok[:, None] & ~jnp.eye(_NUM_CUBES, dtype=bool)


def grasping(data: mjx.Data, cube: str | int) -> jax.Array:
    """bool []: the gripper holds ``cube`` (colour or index): its weld is on and the cube hangs within
    :data:`GRASP_DISTANCE` of its grasp pose. Raises VlmrmError on an unknown colour."""
    return grasped_mask(data)[cube_index(cube)]


def on_top_of(data: mjx.Data, top: str | int, bottom: str | int) -> jax.Array:
    """bool []: ``top`` rests on ``bottom`` (thresholds in the module docstring).

    Raises:
        VlmrmError: on an unknown colour, or top == bottom.
    """
    i, j = cube_index(top), cube_index(bottom)
    if i == j:
        raise VlmrmError(f"a cube cannot be on top of itself ({COLOURS[i]!r}); give two different cubes")
    return on_top_matrix(data)[i, j]


def subgoal_truth(data: mjx.Data) -> jax.Array:
    """bool [9]: which :data:`~.language.SUBGOALS` hold, in their id order (3 grasps, then the 6 on-top pairs)."""
    on_top = on_top_matrix(data)
    pairs = jnp.stack([on_top[COLOURS.index(t), COLOURS.index(b)] for t, b in STACK_PAIRS])
    return jnp.concatenate([grasped_mask(data), pairs])


def tower_mask(data: mjx.Data) -> jax.Array:
    """bool [6]: which of :data:`TOWERS` (bottom, middle, top) stands."""
    on_top = on_top_matrix(data)
    return jnp.stack([on_top[m, b] & on_top[t, m] for b, m, t in TOWERS])


def task_success(data: mjx.Data, task: str | Task) -> jax.Array:
    """bool []: whether ``task`` (a key of ``language.TASKS`` or a Task) holds in ``data``.

    Raises:
        VlmrmError: on an unknown task key.
    """
    task = get_task(task) if isinstance(task, str) else task
    idx = [cube_index(c) for c in task.colours]
    if task.kind == "grasp":
        return grasping(data, idx[0])
    if task.kind == "stack":
        return on_top_of(data, idx[0], idx[1])
    if task.key == "stack_all":
        return jnp.any(tower_mask(data))
    if task.kind == "tower":
        return tower_mask(data)[TOWERS.index(tuple(idx))]
    raise VlmrmError(f"task {task.key!r} has kind {task.kind!r}; known kinds: grasp, stack, tower")


__all__ = ["GRASP_DISTANCE", "ON_TOP_DZ", "ON_TOP_XY", "RESTING_SPEED", "TOWERS", "cube_index", "cube_positions",
           "cube_speeds", "grasped_mask", "grasping", "gripper_position", "on_top_matrix", "on_top_of",
           "subgoal_truth", "task_success", "tower_mask"]
