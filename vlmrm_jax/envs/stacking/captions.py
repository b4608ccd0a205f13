"""Auto-labelled block-stacking frames for the in-domain subgoal detector (Di Palo et al. 2023, section 4.2).

The paper fine-tuned CLIP on ~1e3 automatically labelled frames captioned "The robot is grasping X" / "The X is on
top of Y". Here states are built directly (:meth:`Stacking.state_from_positions`), let physics act for
``settle_substeps`` MJX steps with the gripper and its weld unchanged (so cubes released over an edge start to tip,
dropped cubes land, stacks sit), labelled by the env's ground truth (:meth:`Stacking.subgoal_truth` on the settled
state, thresholds in :mod:`.predicates`) and rendered from BOTH basket cameras by the env's renderer: every state
gives two consecutive frames, camera 0 then camera 1, with the same labels (the truth of the state, whether or not
that camera sees it).

Sampling modes (:attr:`StackingSource.modes`), weights ``mode_weights``:

- ``scatter``: the three cubes apart on the basket floor (the env's start layouts), nothing held;
- ``held``: one cube in the gripper, the other two apart on the floor or one on the other;
- ``stack``: one cube on another (centres within ``0.8 * ON_TOP_XY`` horizontally), the third on the floor or held;
- ``tower``: all three stacked, in a random order;
- ``near_miss``: the hard negatives: a cube beside another (touching to 2 cm apart), a cube half off another
  (horizontal offset between ``1.1 * ON_TOP_XY`` and 1.9 cube half-edges: it tips while settling), or a held cube
  just above another (grasped, not on top).

A held cube hangs at a random gripper height: 60% at the env's hover height (where it is after a pick), the rest
lower, never through what is under it. Captions: each subgoal's canonical caption is the paper's
(:data:`~.language.SUBGOALS`), plus three phrasings; three derived concepts (nothing held, no cube on another, a
three-cube tower) give the contrastive training more negatives with meaning; the baseline "a robot arm over a basket
with three cubes" holds for every frame.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from vlmrm_jax.datasets.base import FrameBatch
from vlmrm_jax.datasets.captions import CaptionSet, Concept
from vlmrm_jax.envs.stacking.camera import CAMERAS
from vlmrm_jax.envs.stacking.env import REACH, Stacking
from vlmrm_jax.envs.stacking.language import COLOURS, STACK_PAIRS, SUBGOALS, grasp_caption, on_top_caption
from vlmrm_jax.envs.stacking.predicates import ON_TOP_XY, TOWERS, cube_positions
from vlmrm_jax.envs.stacking.scene import CUBE_HALF, GRIP_OFFSET, GRIPPER_HOME
from vlmrm_jax.errors import VlmrmError

#: The baseline prompt: holds for every frame.
BASELINE_PROMPT = "a robot arm over a basket with three cubes"


def _grasp(colour: str) -> Concept:
    caption = grasp_caption(colour)
    return Concept(f"grasp_{colour}", (caption, f"the robot arm is holding the {colour} cube",
                                       f"the gripper lifts the {colour} block",
                                       f"a {colour} cube held in the robot's gripper"), caption)


def _on_top(top: str, bottom: str) -> Concept:
    caption = on_top_caption(top, bottom)
    return Concept(f"{top}_on_{bottom}", (caption, f"the {top} cube is stacked on the {bottom} cube",
                                          f"a {top} block resting on top of a {bottom} block",
                                          f"the {bottom} cube is under the {top} cube"), caption)


#: The stacking caption vocabulary: the nine subgoals in SUBGOALS order (their paper captions as prompts), three
#: derived concepts, and the baseline.
STACKING_CAPTIONS = CaptionSet(concepts=(
    *(_grasp(c) for c in COLOURS),
    *(_on_top(t, b) for t, b in STACK_PAIRS),
    Concept("nothing_held", ("The robot is not holding anything", "the gripper is empty")),
    Concept("no_stack", ("No object is on top of another", "the three cubes lie apart in the basket")),
    Concept("tower", ("The three objects are stacked into a tower", "a tower of three cubes")),
    Concept("scene", (BASELINE_PROMPT, "three coloured cubes in a basket", "a robot gripper above a basket")),
), baseline="scene")
assert tuple(c.prompt for c in STACKING_CAPTIONS.concepts[:len(SUBGOALS)]) == SUBGOALS  # columns 0-8 = SUBGOALS

#: Sampling modes, in ``FrameBatch.modes`` order.
MODES = ("scatter", "held", "stack", "tower", "near_miss")
#: Default relative frequency of the modes.
MODE_WEIGHTS = (0.15, 0.25, 0.3, 0.15, 0.15)
_HOVER = GRIPPER_HOME[2]
_EDGE = 2 * CUBE_HALF


def labels_from_truth(truth: np.ndarray) -> np.ndarray:
    """Labels of :data:`STACKING_CAPTIONS` from the env's ground truth.

    Args:
        truth: bool [N, 9], ``Stacking.subgoal_truth`` of N states (SUBGOALS order: 3 grasps, 6 on-top pairs).

    Returns:
        bool [N, 13]: the nine subgoals, nothing held (no grasp), no stack (no on-top pair), tower (some
        bottom-middle-top order of :data:`~.predicates.TOWERS` stands), and the baseline (always).
    """
    truth = np.asarray(truth, bool)
    grasp, pairs = truth[:, :3], truth[:, 3:]
    on_top = np.zeros((len(truth), 3, 3), bool)
    for k, (t, b) in enumerate(STACK_PAIRS):
        on_top[:, COLOURS.index(t), COLOURS.index(b)] = pairs[:, k]
    tower = np.zeros(len(truth), bool)
    for b, m, t in TOWERS:
        tower |= on_top[:, m, b] & on_top[:, t, m]
    return np.concatenate([truth, ~grasp.any(1, keepdims=True), ~pairs.any(1, keepdims=True), tower[:, None],
                           np.ones((len(truth), 1), bool)], axis=1)


def _apart(rng: np.random.Generator, n: int, fixed: list[np.ndarray], gap: float) -> list[np.ndarray]:
    """n floor positions (x, y) at least ``gap`` apart along x or y from each other and from ``fixed``."""
    out: list[np.ndarray] = []
    for _ in range(n):
        for _ in range(200):
            xy = rng.uniform(-REACH, REACH, 2)
            if all(np.max(np.abs(xy - o)) >= gap for o in fixed + out):
                break
        out.append(xy)
    return out


class StackingSource:
    """Samples, settles, labels and renders stacking states from both cameras (see the module docstring).

    Args:
        image_size: frames are ``image_size`` x ``image_size`` pixels (64 for ``stacking-clip-tiny``; the paper's
            cameras are 128 x 128).
        shadows: ray-traced shadows, as the env renders by default.
        settle_substeps: MJX physics steps (0.01 s each) before labelling and rendering (0: the states exactly as
            built).
        mode_weights: relative frequency of :data:`MODES`.

    Raises:
        VlmrmError: a non-positive size, negative substeps, weights that are negative, of the wrong length or sum
            to zero.
    """

    env = "stacking"
    captions = STACKING_CAPTIONS
    modes = MODES
    state_names = (tuple(f"{c}_{a}" for c in COLOURS for a in "xyz") + tuple(f"{c}_q{a}" for c in COLOURS
                                                                             for a in "wxyz")
                   + ("gripper_x", "gripper_y", "gripper_z", "held", "camera", "scene"))

    def __init__(self, image_size: int = 64, *, shadows: bool = True, settle_substeps: int = 20,
                 mode_weights: tuple[float, ...] = MODE_WEIGHTS):
        weights = np.asarray(mode_weights, np.float64)
        if image_size <= 0 or settle_substeps < 0:
            raise VlmrmError(f"image_size={image_size}, settle_substeps={settle_substeps}: pass a positive size and "
                             f"substeps >= 0")
        if weights.shape != (len(MODES),) or (weights < 0).any() or weights.sum() <= 0:
            raise VlmrmError(f"mode_weights={tuple(mode_weights)} must be {len(MODES)} non-negative weights (for "
                             f"{', '.join(MODES)}) with a positive sum")
        self.image_size, self.shadows, self.settle_substeps = int(image_size), bool(shadows), int(settle_substeps)
        self.mode_weights = tuple(float(w) for w in weights / weights.sum())
        self._env = env = Stacking()
        frames = env.make_frames_fn(self.image_size, self.image_size, shadows=self.shadows)

        def one(cube_pos, held, gripper):
            state = env.state_from_positions(cube_pos, held, gripper)
            if self.settle_substeps:
                state = env.settle(state, self.settle_substeps)
            data = state.pipeline_state
            state_row = jnp.concatenate([cube_positions(data).ravel(), data.qpos[:21].reshape(3, 7)[:, 3:].ravel(),
                                         data.mocap_pos[0]])
            return (jnp.round(frames(state) * 255).astype(jnp.uint8), env.subgoal_truth(state), state_row)

        self._render = jax.jit(jax.vmap(one))

    @property
    def config(self) -> dict:
        """The settings that, with a seed, reproduce the frames."""
        return {"image_size": self.image_size, "shadows": self.shadows, "settle_substeps": self.settle_substeps,
                "mode_weights": list(self.mode_weights), "cameras": list(CAMERAS)}

    # ------------------------------------------------------------------ sampling

    def sample_states(self, num_states: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """States as built, before settling.

        Returns:
            (cube_pos float32 [n, 3, 3] m, held int32 [n] (-1 none), gripper float32 [n, 3] m, modes int32 [n]).
        """
        rng = np.random.default_rng(seed)
        modes = rng.choice(len(MODES), size=num_states, p=self.mode_weights).astype(np.int32)
        cube_pos = np.zeros((num_states, 3, 3), np.float32)
        held = np.full(num_states, -1, np.int32)
        gripper = np.zeros((num_states, 3), np.float32)
        for i, mode in enumerate(modes):
            cube_pos[i], held[i], gripper[i] = getattr(self, f"_sample_{MODES[mode]}")(rng)
        return cube_pos, held, gripper, modes

    @staticmethod
    def _on_floor(xy) -> np.ndarray:
        return np.array([xy[0], xy[1], CUBE_HALF])

    @staticmethod
    def _free_gripper(rng) -> np.ndarray:
        """An empty gripper: anywhere over the basket, at hover height or lower (above every cube)."""
        z = _HOVER if rng.random() < 0.5 else rng.uniform(0.2, _HOVER)
        return np.array([*rng.uniform(-REACH, REACH, 2), z])

    @staticmethod
    def _holding_gripper(rng, xy, floor_height: float) -> np.ndarray:
        """The gripper holding a cube at (x, y), its bottom above ``floor_height`` (m)."""
        lowest = floor_height + 0.01 + CUBE_HALF + GRIP_OFFSET
        z = _HOVER if rng.random() < 0.6 else rng.uniform(min(lowest, _HOVER), _HOVER)
        return np.array([xy[0], xy[1], max(z, lowest)])

    def _support_height(self, cubes: list[np.ndarray], xy) -> float:
        """Top of the highest cube whose footprint overlaps a cube's footprint at (x, y); 0 for the floor."""
        tops = [c[2] + CUBE_HALF for c in cubes if np.max(np.abs(c[:2] - xy)) < _EDGE + 0.004]
        return max(tops, default=0.0)

    def _sample_scatter(self, rng):
        order = rng.permutation(3)
        xy = _apart(rng, 3, [], _EDGE + 0.01)
        cubes = np.zeros((3, 3))
        for k, c in enumerate(order):
            cubes[c] = self._on_floor(xy[k])
        return cubes, -1, self._free_gripper(rng)

    def _stack_on(self, rng, bottom: np.ndarray, max_offset: float) -> np.ndarray:
        r, a = max_offset * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
        return bottom + np.array([r * np.cos(a), r * np.sin(a), _EDGE])

    def _sample_held(self, rng):
        h, a, b = rng.permutation(3)
        cubes = np.zeros((3, 3))
        if rng.random() < 0.4:  # the other two stacked
            cubes[b] = self._on_floor(_apart(rng, 1, [], 0)[0])
            cubes[a] = self._stack_on(rng, cubes[b], 0.8 * ON_TOP_XY)
        else:
            xy = _apart(rng, 2, [], _EDGE + 0.01)
            cubes[a], cubes[b] = self._on_floor(xy[0]), self._on_floor(xy[1])
        xy = rng.uniform(-REACH, REACH, 2)
        return cubes, h, self._holding_gripper(rng, xy, self._support_height([cubes[a], cubes[b]], xy))

    def _sample_stack(self, rng):
        t, b, third = rng.permutation(3)
        cubes = np.zeros((3, 3))
        cubes[b] = self._on_floor(_apart(rng, 1, [], 0)[0])
        cubes[t] = self._stack_on(rng, cubes[b], 0.8 * ON_TOP_XY)
        if rng.random() < 0.3:  # the third cube held
            xy = rng.uniform(-REACH, REACH, 2)
            return cubes, third, self._holding_gripper(rng, xy, self._support_height([cubes[t], cubes[b]], xy))
        cubes[third] = self._on_floor(_apart(rng, 1, [cubes[b][:2]], _EDGE + 0.01)[0])
        return cubes, -1, self._free_gripper(rng)

    def _sample_tower(self, rng):
        b, m, t = rng.permutation(3)
        cubes = np.zeros((3, 3))
        cubes[b] = self._on_floor(_apart(rng, 1, [], 0)[0] * 0.8)
        cubes[m] = self._stack_on(rng, cubes[b], 0.5 * ON_TOP_XY)
        cubes[t] = self._stack_on(rng, cubes[m], 0.5 * ON_TOP_XY)
        return cubes, -1, self._free_gripper(rng)

    def _sample_near_miss(self, rng):
        x, y, third = rng.permutation(3)
        cubes = np.zeros((3, 3))
        cubes[y] = self._on_floor(_apart(rng, 1, [], 0)[0] * 0.7)
        kind = rng.integers(3)
        for _ in range(100):  # a direction that keeps the other cube inside the reach
            angle = rng.uniform(0, 2 * np.pi)
            direction = np.array([np.cos(angle), np.sin(angle)])
            if kind == 0:  # beside: touching to 2 cm apart (gap between the faces along the nearest axis)
                offset = (_EDGE + rng.uniform(0.001, 0.02)) / np.max(np.abs(direction))
            elif kind == 1:  # half off: over the lower cube's edge (it tips while settling)
                offset = rng.uniform(1.1 * ON_TOP_XY, 1.9 * CUBE_HALF)
            else:  # held just above the lower cube: grasped, not on top
                offset = rng.uniform(0, 0.8 * ON_TOP_XY)
            xy = cubes[y][:2] + offset * direction
            if np.all(np.abs(xy) <= REACH):
                break
        if kind == 0:
            cubes[x] = self._on_floor(xy)
        elif kind == 1:
            cubes[x] = np.array([*xy, cubes[y][2] + _EDGE])
        else:
            bottom = _EDGE + 0.004 + rng.uniform(0.0, 0.03)  # the held cube's bottom, above the lower cube's top
            gripper = np.array([*xy, bottom + CUBE_HALF + GRIP_OFFSET])
            cubes[third] = self._on_floor(_apart(rng, 1, [cubes[y][:2]], _EDGE + 0.01)[0])
            return cubes, x, gripper
        cubes[third] = self._on_floor(_apart(rng, 1, [cubes[y][:2], cubes[x][:2]], _EDGE + 0.01)[0])
        return cubes, -1, self._free_gripper(rng)

    # ------------------------------------------------------------------ frames

    def render_states(self, cube_pos: np.ndarray, held: np.ndarray,
                      gripper: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Settles, labels and renders given states (jitted, one compiled shape per batch size).

        Args:
            cube_pos: float [n, 3, 3] cube centres (m; a held cube's entry is ignored); held: int [n] (-1 none);
                gripper: float [n, 3] (m).

        Returns:
            (images uint8 [n, 2, S, S, 3] from both CAMERAS, labels bool [n, 13] (:func:`labels_from_truth` of the
            settled states' ``subgoal_truth``), states float32 [n, 24]: settled cube centres [9], quaternions [12],
            gripper [3]).
        """
        images, truth, states = self._render(jnp.asarray(cube_pos, jnp.float32), jnp.asarray(held, jnp.int32),
                                             jnp.asarray(gripper, jnp.float32))
        return np.asarray(images), labels_from_truth(np.asarray(truth)), np.asarray(states, np.float32)

    def generate(self, num_frames: int, seed: int, chunk_size: int = 256) -> Iterator[FrameBatch]:
        """Yields ``num_frames`` frames in chunks of at most ``chunk_size``: state k gives frames 2k (camera 0) and
        2k + 1 (camera 1); ``states[:, -3:]`` are the held cube, the camera index and the state index k."""
        if num_frames <= 0 or chunk_size < 2:
            raise VlmrmError(f"num_frames={num_frames}, chunk_size={chunk_size}: pass a positive frame count and a "
                             f"chunk size >= 2 (each state gives one frame per camera)")
        num_states = (num_frames + 1) // 2
        cube_pos, held, gripper, modes = self.sample_states(num_states, seed)
        per_chunk = chunk_size // 2
        emitted = 0
        for start in range(0, num_states, per_chunk):
            sl = slice(start, start + per_chunk)
            n = len(held[sl])
            pad = per_chunk - n if num_states > per_chunk else 0  # one compiled shape
            args = [np.concatenate([a[sl], np.repeat(a[sl][:1], pad, axis=0)]) for a in (cube_pos, held, gripper)]
            images, labels, states = (x[:n] for x in self.render_states(*args))
            index = np.arange(start, start + n, dtype=np.float32)
            rows = [np.concatenate([states, np.stack([held[sl].astype(np.float32), np.full(n, v, np.float32),
                                                      index], axis=1)], axis=1) for v in range(len(CAMERAS))]
            batch = FrameBatch(images.reshape((-1,) + images.shape[2:]), np.repeat(labels, 2, axis=0),
                               np.stack(rows, axis=1).reshape(2 * n, -1), np.repeat(modes[sl], 2))
            take = min(len(batch.images), num_frames - emitted)
            emitted += take
            yield FrameBatch(*(x[:take] for x in batch))


__all__ = ["BASELINE_PROMPT", "MODES", "MODE_WEIGHTS", "STACKING_CAPTIONS", "StackingSource", "labels_from_truth"]
