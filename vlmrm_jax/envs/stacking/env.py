"""Block stacking in MJX with Di Palo et al. (2023)'s high-level pick/place action space and sparse task reward.

Three 5 cm cubes (red, green, blue) lie in a basket (:mod:`.scene`). One action is an (x, y) position over the
basket: with nothing held it is a *pick* there, with a cube held a *place* there. Each primitive is a scripted
motion of the mocap gripper, run as :data:`SUBSTEPS` MJX physics steps of ``scene.TIMESTEP`` (0.01 s) inside the
jitted ``step``:

1. move (``MOVE_SUBSTEPS``): the gripper travels at hover height (``scene.GRIPPER_HOME[2]``) to above (x, y);
2. descend (``DESCEND_SUBSTEPS``): down to the grasp height of the topmost cube under (x, y) (pick; to
   ``MISS_HEIGHT`` over a bare floor) or until the held cube's bottom is ``PLACE_CLEARANCE`` above the highest
   surface under its footprint (place);
3. grasp or release: a pick turns on the weld of the topmost cube under (x, y) if that cube's centre is within
   :data:`GRASP_TOLERANCE` (horizontal distance) of (x, y), else nothing is grasped; a place turns the weld off;
4. lift (``LIFT_SUBSTEPS``): the gripper rises back to hover height while a released cube lands and settles;
5. hold (``HOLD_SUBSTEPS``): the gripper waits at hover height, so that a grasped cube catches up with its grasp
   pose (the weld is a soft constraint with a 0.02 s time constant, and a mocap body has no velocity, so a lifted
   cube trails the gripper by up to 5 cm during the lift) and a released cube comes to rest.

The physics decides the rest: a cube released over an edge tips and falls, a grasp snaps the cube to the centred
grasp pose (``scene.GRIP_OFFSET`` below the gripper, axes aligned) while it is lifted. "Under (x, y)" uses each
cube's axis-aligned footprint (cubes start axis-aligned; a cube that tumbled and turned is treated as its
axis-aligned bounding square).

Action mapping: float32 [2] in [-1, 1] -> (x, y) = action * :data:`REACH` metres from the basket's centre, so a
cube centred on any reachable point fits inside the walls. Actions outside [-1, 1] are CLIPPED to it, and NaN
becomes 0 (the basket's centre) (documented behaviour, no error: a jitted step cannot raise).
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from brax.envs.base import Env, State
from mujoco import mjx

from vlmrm_jax.envs.stacking import predicates
from vlmrm_jax.envs.stacking.camera import CAMERAS
from vlmrm_jax.envs.stacking.language import COLOURS, SUBGOALS, get_task
from vlmrm_jax.envs.stacking.scene import BASKET_HALF, CUBE_HALF, GRIP_OFFSET, GRIPPER_HOME, load_model
from vlmrm_jax.errors import VlmrmError

#: Reach of the action (m): (x, y) = action * REACH, so a cube centred there stays inside the basket's walls.
REACH = BASKET_HALF - CUBE_HALF
#: A pick grasps the topmost cube under (x, y) only if its centre is within this horizontal distance (m).
GRASP_TOLERANCE = 0.02
#: A place releases the held cube when its bottom is this far (m) above the highest surface under it.
PLACE_CLEARANCE = 0.005
#: Gripper height (m) at the bottom of a pick over a bare floor (fingers just above the basket floor).
MISS_HEIGHT = 0.05
#: Physics steps of each phase of a primitive.
MOVE_SUBSTEPS, DESCEND_SUBSTEPS, LIFT_SUBSTEPS, HOLD_SUBSTEPS = 10, 8, 12, 10
#: Physics steps per high-level action (pick or place).
SUBSTEPS = MOVE_SUBSTEPS + DESCEND_SUBSTEPS + LIFT_SUBSTEPS + HOLD_SUBSTEPS
#: Default episode length in high-level actions: enough for the 4-step triple stack with slack.
EPISODE_LENGTH = 10
#: Initial cube centres are at least this far apart along x or y (m): 1 cm between the faces.
MIN_START_GAP = 2 * CUBE_HALF + 0.01

_NUM_CUBES = len(COLOURS)
_HOVER = GRIPPER_HOME[2]


def _smoothstep(s: jax.Array) -> jax.Array:
    """0 -> 1 with zero slope at both ends, for s in [0, 1] (clipped)."""
    s = jnp.clip(s, 0.0, 1.0)
    return s * s * (3 - 2 * s)


def sample_start_positions(rng: jax.Array, num_candidates: int = 64) -> jax.Array:
    """Random, non-overlapping cube centres on the basket floor: float32 [3, 3] (m).

    Each centre is uniform over the reachable square (|x|, |y| <= REACH), z = CUBE_HALF; any two cubes are at least
    MIN_START_GAP apart along x or y. Draws ``num_candidates`` layouts and keeps the first valid one (a layout is
    valid with probability ~0.7, so all fail with probability < 1e-30; the last candidate is then used as is).
    """
    xy = jax.random.uniform(rng, (num_candidates, _NUM_CUBES, 2), minval=-REACH, maxval=REACH)
    gap = jnp.max(jnp.abs(xy[:, :, None] - xy[:, None, :]), axis=-1)  # Chebyshev distance [K, 3, 3]
    ok = jnp.all((gap >= MIN_START_GAP) | jnp.eye(_NUM_CUBES, dtype=bool), axis=(1, 2))
    chosen = xy[jnp.where(jnp.any(ok), jnp.argmax(ok), num_candidates - 1)]
    return jnp.concatenate([chosen, jnp.full((_NUM_CUBES, 1), CUBE_HALF)], axis=-1)


class Stacking(Env):
    """Three cubes in a basket, one pick/place per action, reward 1 when the episode's task holds.

    Observation float32 [16]: the cubes' centres [3 x 3] (m, world, COLOURS order), the gripper's position [3] (m)
    and what is held, one-hot [4] (none, red, green, blue). Action float32 [2]: see the module docstring.
    ``state.reward`` float32 []: 1.0 when the task holds after the action, else 0.0 (sparse, Di Palo et al. 2023).
    ``state.done`` float32 []: 1.0 on success or after ``episode_length`` actions.
    ``state.info``: "steps" (int32 [], actions taken) and "held" (int32 [], -1 none, else the cube index).
    ``state.metrics``: "success" (float32 [], the task holds).

    Args:
        task: a key of ``language.TASKS`` (e.g. "grasp_red", "stack_red_on_blue", "stack_all").
        episode_length: actions per episode (> 0).

    Raises:
        VlmrmError: on an unknown task or a non-positive episode length.
    """

    def __init__(self, task: str = "stack_red_on_blue", *, episode_length: int = EPISODE_LENGTH):
        self.task = get_task(task)
        if not isinstance(episode_length, (int, np.integer)) or episode_length <= 0:
            raise VlmrmError(f"episode_length={episode_length!r} must be a positive number of actions, e.g. 10")
        self.episode_length = int(episode_length)
        self.mj_model: mujoco.MjModel = load_model()
        self.sys: mjx.Model = mjx.put_model(self.mj_model)
        self._data0 = mjx.make_data(self.mj_model)

    # ------------------------------------------------------------------ brax Env

    @property
    def observation_size(self) -> int:
        return 3 * _NUM_CUBES + 3 + _NUM_CUBES + 1

    @property
    def action_size(self) -> int:
        return 2

    @property
    def backend(self) -> str:
        return "mjx"

    def reset(self, rng: jax.Array) -> State:
        """A new episode: cubes at random non-overlapping positions on the basket floor (axis-aligned, at rest),
        nothing held, the gripper at ``scene.GRIPPER_HOME``."""
        return self.state_from_positions(sample_start_positions(rng), -1, jnp.asarray(GRIPPER_HOME, jnp.float32))

    def step(self, state: State, action: jax.Array) -> State:
        """One pick (nothing held) or place (a cube held) at ``action`` (clipped to [-1, 1]), as SUBSTEPS physics
        steps; see the module docstring."""
        data = state.pipeline_state
        held = state.info["held"]
        target = jnp.clip(jnp.nan_to_num(jnp.asarray(action, jnp.float32)), -1.0, 1.0) * REACH
        pos = predicates.cube_positions(data)
        top = pos[:, 2] + CUBE_HALF
        holding = held >= 0
        not_held = jnp.arange(_NUM_CUBES) != held

        # Pick: the topmost cube whose footprint contains (x, y).
        under = jnp.all(jnp.abs(pos[:, :2] - target) < CUBE_HALF, axis=-1) & not_held
        pick = jnp.argmax(jnp.where(under, top, -jnp.inf))
        centred = jnp.linalg.norm(pos[pick, :2] - target) <= GRASP_TOLERANCE
        grasp = ~holding & jnp.any(under) & centred
        pick_z = jnp.where(jnp.any(under), top[pick] - CUBE_HALF + GRIP_OFFSET, MISS_HEIGHT)
        # Place: above the highest surface under the held cube's footprint (the floor is z = 0).
        overlap = jnp.all(jnp.abs(pos[:, :2] - target) < 2 * CUBE_HALF, axis=-1) & not_held
        surface = jnp.max(jnp.where(overlap, top, 0.0))
        place_z = surface + PLACE_CLEARANCE + CUBE_HALF + GRIP_OFFSET
        bottom_z = jnp.where(holding, place_z, pick_z)
        new_held = jnp.where(holding, -1, jnp.where(grasp, pick, -1)).astype(jnp.int32)
        new_active = jnp.arange(_NUM_CUBES) == new_held

        start = data.mocap_pos[0]
        t_release = MOVE_SUBSTEPS + DESCEND_SUBSTEPS

        def substep(d, t):
            move = _smoothstep((t + 1) / MOVE_SUBSTEPS)
            down = _smoothstep((t + 1 - MOVE_SUBSTEPS) / DESCEND_SUBSTEPS)
            up = _smoothstep((t + 1 - t_release) / LIFT_SUBSTEPS)
            xy = start[:2] + move * (target - start[:2])
            z = _HOVER + down * (bottom_z - _HOVER) + up * (_HOVER - bottom_z)
            eq_active = jnp.where(t >= t_release, new_active, d.eq_active)
            d = d.replace(mocap_pos=jnp.concatenate([xy, z[None]])[None], eq_active=eq_active)
            return mjx.step(self.sys, d), None

        data, _ = jax.lax.scan(substep, data, jnp.arange(SUBSTEPS))
        steps = state.info["steps"] + 1
        return self._state(data, new_held, steps)

    # ------------------------------------------------------------------ states

    def _state(self, data: mjx.Data, held: jax.Array, steps: jax.Array) -> State:
        success = self.task_success_of(data)
        reward = success.astype(jnp.float32)
        done = jnp.maximum(reward, (steps >= self.episode_length).astype(jnp.float32))
        return State(pipeline_state=data, obs=self.observation(data, held), reward=reward, done=done,
                     metrics={"success": reward}, info={"steps": steps.astype(jnp.int32),
                                                        "held": held.astype(jnp.int32)})

    def observation(self, data: mjx.Data, held: jax.Array) -> jax.Array:
        """float32 [16]: cube centres [9], gripper position [3], held one-hot [4] (none, red, green, blue)."""
        held_one_hot = jax.nn.one_hot(held + 1, _NUM_CUBES + 1, dtype=jnp.float32)
        return jnp.concatenate([predicates.cube_positions(data).ravel(), predicates.gripper_position(data),
                                held_one_hot]).astype(jnp.float32)

    def state_from_positions(self, cube_pos: jax.Array, held: int | jax.Array, ee_pos: jax.Array,
                             cube_quat: jax.Array | None = None, steps: int | jax.Array = 0) -> State:
        """A state built directly (for tests, datasets and caption sources), jittable.

        Not settled: the cubes are placed exactly where given, with zero velocity, and MJX's kinematics (body, geom,
        camera and light poses, the mass matrix) are computed, so rendering, predicates and ``mjx.get_data`` see them
        there; contacts and forces are computed by the next physics step. Run :meth:`settle` to let physics act. Cubes that interpenetrate
        are pushed apart by the next physics step.

        Args:
            cube_pos: float32 [3, 3], cube centres (m, world), COLOURS order. A held cube's entry is ignored: it is
                put in the grasp pose under the gripper.
            held: -1 for none, else the index of the held cube (its weld is switched on).
            ee_pos: float32 [3], the gripper's position (m).
            cube_quat: float32 [3, 4] orientations (w, x, y, z); default axis-aligned.
            steps: the actions taken so far (``info["steps"]``).

        Returns:
            a State whose reward/done/metrics are evaluated for the env's task.
        """
        held = jnp.asarray(held, jnp.int32)
        ee_pos = jnp.asarray(ee_pos, jnp.float32)
        cube_pos = jnp.asarray(cube_pos, jnp.float32)
        grasp_pose = ee_pos - jnp.array([0.0, 0.0, GRIP_OFFSET], jnp.float32)
        cube_pos = jnp.where((jnp.arange(_NUM_CUBES) == held)[:, None], grasp_pose, cube_pos)
        if cube_quat is None:
            cube_quat = jnp.tile(jnp.array([1.0, 0.0, 0.0, 0.0], jnp.float32), (_NUM_CUBES, 1))
        qpos = jnp.concatenate([cube_pos, jnp.asarray(cube_quat, jnp.float32)], axis=-1).ravel()
        data = self._data0.replace(qpos=qpos, qvel=jnp.zeros_like(self._data0.qvel),
                                   mocap_pos=ee_pos[None], eq_active=jnp.arange(_NUM_CUBES) == held)
        data = mjx.com_pos(self.sys, mjx.kinematics(self.sys, data))
        data = mjx.factor_m(self.sys, mjx.crb(self.sys, mjx.camlight(self.sys, data)))
        return self._state(data, held, jnp.asarray(steps, jnp.int32))

    def settle(self, state: State, num_substeps: int = 50) -> State:
        """``state`` after ``num_substeps`` physics steps with the gripper and welds unchanged (jittable)."""
        data = jax.lax.fori_loop(0, num_substeps, lambda _, d: mjx.step(self.sys, d), state.pipeline_state)
        return self._state(data, state.info["held"], state.info["steps"])

    # ------------------------------------------------------------------ ground truth

    def task_success_of(self, data: mjx.Data) -> jax.Array:
        """bool []: the env's task holds in ``data`` (see :func:`.predicates.task_success`)."""
        return predicates.task_success(data, self.task)

    def task_success(self, state: State) -> jax.Array:
        """bool []: the episode's task holds in ONE state (ground truth on the physics)."""
        return self.task_success_of(state.pipeline_state)

    def subgoal_truth(self, state: State) -> jax.Array:
        """bool [len(SUBGOALS)] = [9]: which SUBGOALS captions hold in ONE state, in id order (ground truth)."""
        return predicates.subgoal_truth(state.pipeline_state)

    def step_metrics_fn(self) -> Callable[[State], dict[str, jax.Array]]:
        """``State -> {"success": float32 [], <subgoal caption>: float32 []}`` for ONE state: the task and every
        subgoal of SUBGOALS (1.0 where it holds), logged next to any learned reward."""
        def metrics(state: State) -> dict[str, jax.Array]:
            truth = self.subgoal_truth(state).astype(jnp.float32)
            return {"success": self.task_success(state).astype(jnp.float32),
                    **{caption: truth[i] for i, caption in enumerate(SUBGOALS)}}

        return metrics

    def task_metric(self, prompts: Sequence[str]) -> str:
        """"success": the env's own task is the criterion, whatever the prompts."""
        del prompts
        return "success"

    def episode_success(self, holds: jax.Array) -> jax.Array:
        """Di Palo et al.'s criterion: the task held at some step; bool [T, B] -> bool [B]."""
        from vlmrm_jax.eval.success import reached_at_any_step

        return reached_at_any_step(holds)

    # ------------------------------------------------------------------ rendering

    def _renderer(self, camera: str, width: int, height: int, shadows: bool):
        from vlmrm_jax.render import FixedCamera, RenderConfig, Renderer

        if camera not in CAMERAS:
            raise VlmrmError(f"camera {camera!r} is not a stacking camera; use one of {CAMERAS}")
        return Renderer(self.mj_model, FixedCamera(camera), RenderConfig(width=width, height=height, shadows=shadows))

    def make_render_fn(self, width: int = 128, height: int = 128, *, shadows: bool = True,
                       camera: str | None = None) -> Callable[[State], jax.Array]:
        """A jittable renderer of ONE state from one basket camera, through :class:`vlmrm_jax.render.Renderer`.

        Args:
            width, height: pixels (the paper: 128 x 128).
            shadows: ray-traced shadows from the key light.
            camera: one of ``camera.CAMERAS``; default the first.

        Returns:
            ``render(state) -> float32 [height, width, 3]`` in [0, 1].

        Raises:
            VlmrmError: on an unknown camera or a bad size.
        """
        renderer = self._renderer(camera or CAMERAS[0], width, height, shadows)
        sys = self.sys
        return lambda state: renderer.render(sys, state.pipeline_state)

    def make_frames_fn(self, width: int = 128, height: int = 128, *,
                       shadows: bool = True) -> Callable[[State], jax.Array]:
        """``frames(state) -> float32 [2, height, width, 3]``: ONE state seen by both CAMERAS (in their order)."""
        renders = [self.make_render_fn(width, height, shadows=shadows, camera=c) for c in CAMERAS]
        return lambda state: jnp.stack([render(state) for render in renders])


__all__ = ["EPISODE_LENGTH", "GRASP_TOLERANCE", "PLACE_CLEARANCE", "REACH", "SUBSTEPS", "Stacking",
           "sample_start_positions"]
