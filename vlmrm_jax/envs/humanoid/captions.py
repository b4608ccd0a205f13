"""Auto-labelled humanoid frames: diverse poses, rendered as PPO sees them, captioned from the pose predicates.

States come from five sampling modes (:data:`HumanoidSource.modes`):

- ``reference``: a hand-built pose of :data:`~vlmrm_jax.envs.humanoid.reference_poses.REFERENCE_POSES` (weighted towards
  the paper's tasks) with Gaussian joint noise of a per-frame scale in [0, ``max_noise_deg``];
- ``mixed``: the legs, abdomen and root orientation of one reference pose with the arms of another (e.g. kneeling
  with arms raised, lotus with arms crossed), with smaller noise;
- ``random``: every hinge uniform within its range, the root near upright or uniformly oriented;
- ``rollout``: the state after a random number of steps of random actions from :meth:`Humanoid.reset`;
- ``policy`` (off unless ``policy_states`` is given): a state a trained policy visited, drawn uniformly from the
  file(s) ``python -m experiments.evaluate --save-states`` writes (several files, e.g. of several retraining rounds,
  are pooled). Labelled by the same predicates, these frames teach
  the reward model the poses its own policy reaches, which a reward model trained on the other modes alone may rate
  highly without their being the goal (reward-model retraining on policy samples, as in Christiano et al. 2017).

The first three are placed with their lowest point on the floor (:func:`~vlmrm_jax.envs.humanoid.reference_poses.pose_qpos`)
at a random yaw, some dropped from up to ``max_drop`` m. Every state is then settled by ``settle_steps`` control
steps of the MJX physics with zero torques (so it is physically plausible: contacts resolved, limp limbs start to
sag), rendered by :meth:`Humanoid.make_render_fn` (by default brax's look and the tracking camera, shadows on: exactly
the frames the reward model sees in training; ``look`` and ``camera`` select the others) and labelled by :func:`~vlmrm_jax.envs.humanoid.predicates.evaluate_predicates` on the settled
state. Captions include the paper's eight goal prompts and its baseline "a humanoid robot" (Rocamonde et al. 2023,
section 4.4).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from vlmrm_jax.datasets.base import FrameBatch
from vlmrm_jax.datasets.captions import CaptionSet, Concept
from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.envs.humanoid.predicates import PREDICATES, evaluate_predicates
from vlmrm_jax.envs.humanoid.reference_poses import REFERENCE_POSES, ReferencePose, pose_qpos

_P = {key: p.prompt for key, p in PREDICATES.items()}

#: The humanoid caption vocabulary: one concept per pose predicate (the paper's prompt first where it has one) and
#: the baseline.
HUMANOID_CAPTIONS = CaptionSet(concepts=(
    Concept("kneeling", (_P["kneeling"], "a humanoid robot kneeling on the floor", "a robot down on its knees",
                         "a humanoid robot on its knees"), _P["kneeling"]),
    Concept("lotus", (_P["lotus"], "a humanoid robot sitting cross-legged on the floor",
                      "a humanoid robot meditating", "a robot seated with bent knees spread apart"), _P["lotus"]),
    Concept("standing", (_P["standing"], "a humanoid robot standing", "a robot standing upright on its feet",
                         "a humanoid robot standing upright"), _P["standing"]),
    Concept("arms_raised", (_P["arms_raised"], "a humanoid robot with both arms raised",
                            "a robot raising both arms above its head", "a humanoid robot with its hands up"),
            _P["arms_raised"]),
    Concept("splits", (_P["splits"], "a humanoid robot doing the side splits",
                       "a humanoid robot sitting with its legs spread wide apart", "a robot doing the splits"),
            _P["splits"]),
    Concept("hands_on_hips", (_P["hands_on_hips"], "a humanoid robot with hands on hips",
                              "a robot with its hands on its hips", "a humanoid robot standing akimbo"),
            _P["hands_on_hips"]),
    Concept("arms_crossed", (_P["arms_crossed"], "a humanoid robot with its arms crossed",
                             "a robot with folded arms", "a humanoid robot crossing its arms in front of its body"),
            _P["arms_crossed"]),
    Concept("one_leg", (_P["one_leg"], "a humanoid robot balancing on one leg", "a robot standing on one foot",
                        "a humanoid robot with one leg raised"), _P["one_leg"]),
    Concept("sitting", ("a humanoid robot sitting on the floor", "a robot seated on the ground",
                        "a humanoid robot sitting down")),
    Concept("lying_down", ("a humanoid robot lying on the floor", "a robot lying on the ground",
                           "a humanoid robot lying down")),
    Concept("fallen", ("a humanoid robot that has fallen over", "a fallen robot", "a humanoid robot collapsed")),
    Concept("humanoid", ("a humanoid robot", "a robot", "a picture of a humanoid robot")),
), baseline="humanoid")

#: Sampling weight of each reference pose in the ``reference`` mode: higher for the paper's goal poses, highest for
#: those that few random configurations reach (hands on hips, arms crossed, lotus, splits).
REFERENCE_WEIGHTS = {
    "standing": 1.0, "wide_stance": 0.5, "arms_raised": 1.5, "hands_on_hips": 2.5, "arms_crossed": 2.0,
    "one_leg": 1.5, "kneeling": 1.0, "kneeling_on_heels": 1.0, "one_knee": 1.0, "squat": 0.7, "sitting": 1.0,
    "lotus": 3.0, "splits": 2.0, "bending_over": 0.7, "lying_on_back": 0.5, "lying_face_down": 0.5,
    "lying_on_side": 0.5,
}
#: Reference poses whose arms the ``mixed`` mode combines with the legs of another.
ARM_POSES = ("standing", "arms_raised", "hands_on_hips", "arms_crossed")
#: The joints the ``mixed`` mode takes from the arm pose.
ARM_JOINTS = ("right_shoulder1", "right_shoulder2", "right_elbow", "left_shoulder1", "left_shoulder2", "left_elbow")


class _Frame(NamedTuple):
    """The one field of a brax ``State`` the env's render function reads."""

    pipeline_state: object


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros(4)
    mujoco.mju_mulQuat(out, np.asarray(a, np.float64), np.asarray(b, np.float64))
    return out


def _axis_angle_quat(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])


class HumanoidSource:
    """Samples, renders and labels humanoid frames (see the module docstring).

    Args:
        image_size: frames are ``image_size`` x ``image_size`` pixels (the main job renders at the CLIP's input size;
            64 for ``humanoid-clip-tiny``).
        shadows: ray-traced shadows, as in the main job.
        settle_steps: control steps (0.015 s each, zero torques) simulated before rendering.
        mode_weights: relative frequency of the modes ``reference``, ``mixed``, ``random``, ``rollout``.
        policy_states: path of a ``.npz`` with ``qpos`` [..., 24] and ``qvel`` [..., 23] (float; what
            :func:`vlmrm_jax.pipeline.save_rollout_states` writes), or a sequence of such paths (e.g. the states of
            several retraining rounds), whose states are pooled: the states of the ``policy`` mode.
        policy_fraction: fraction of the frames drawn from ``policy_states`` (in [0, 1); the four other modes share
            the rest by ``mode_weights``). Needs ``policy_states``.
        max_noise_deg: largest standard deviation of the joint noise in the ``reference`` mode (degrees; half of it
            in the ``mixed`` mode).
        max_drop: largest height (m) above the floor at which a sampled pose starts settling (20% of poses).
        rollout_length: random-action rollouts last 1 to this many env steps.
        look: the scene look, "brax" (default) or "paper" (:class:`~vlmrm_jax.envs.humanoid.Humanoid`'s ``look``).
        camera: the camera the frames are rendered through, "tracking" (default), "paper" or "oblique"
            (``Humanoid``'s ``camera``). A CLIP trained on these frames should be used with the same look and camera.

    Raises:
        VlmrmError: on a non-positive size or step count, negative weights, or weights summing to zero, an
            unknown look or camera, a ``policy_fraction`` outside [0, 1) or without ``policy_states`` (or
            ``policy_states`` without a positive fraction), an empty sequence of files, or a ``policy_states`` file
            that is missing or holds arrays of the wrong shapes.
    """

    env = "humanoid"
    captions = HUMANOID_CAPTIONS
    modes = ("reference", "mixed", "random", "rollout", "policy")
    #: The modes whose states :meth:`sample_pose` draws (one by one, in frame order).
    pose_modes = ("reference", "mixed", "random")

    def __init__(self, image_size: int = 64, *, shadows: bool = True, settle_steps: int = 3,
                 mode_weights: tuple[float, float, float, float] = (0.45, 0.2, 0.15, 0.2),
                 max_noise_deg: float = 20.0, max_drop: float = 0.3, rollout_length: int = 100,
                 look: str = "brax", camera: str = "tracking",
                 policy_states: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
                 policy_fraction: float = 0.0):
        from vlmrm_jax.envs.humanoid import Humanoid

        if image_size <= 0 or settle_steps < 0 or rollout_length <= 0:
            raise VlmrmError(f"image_size={image_size}, settle_steps={settle_steps}, rollout_length={rollout_length}: "
                             f"pass a positive image size and rollout length and a non-negative settle_steps")
        weights = np.asarray(mode_weights, np.float64)
        if weights.shape != (4,) or (weights < 0).any() or weights.sum() <= 0:
            raise VlmrmError(f"mode_weights={mode_weights} must be 4 non-negative numbers (reference, mixed, random, "
                             f"rollout) with a positive sum")
        self.image_size = int(image_size)
        self.shadows = bool(shadows)
        self.settle_steps = int(settle_steps)
        if policy_states is not None:
            policy_states = [os.fspath(policy_states)] if isinstance(policy_states, (str, os.PathLike)) else \
                [os.fspath(path) for path in policy_states]
            if not policy_states:
                raise VlmrmError("policy_states=[] names no file: pass one or more files of "
                                 "`experiments.evaluate --save-states`, or None")
        if not 0.0 <= policy_fraction < 1.0 or (policy_fraction > 0) != (policy_states is not None):
            raise VlmrmError(f"policy_fraction={policy_fraction} with policy_states={policy_states!r}: give both (a "
                             f"fraction in (0, 1) and a file of `experiments.evaluate --save-states`) or neither")
        weights = np.append(weights / weights.sum() * (1.0 - policy_fraction), policy_fraction)
        self.mode_weights = tuple(float(w) for w in weights)
        self.policy_states, self.policy_fraction = policy_states, float(policy_fraction)
        self.max_noise_deg = float(max_noise_deg)
        self.max_drop = float(max_drop)
        self.rollout_length = int(rollout_length)
        self._env = Humanoid(look=look, camera=camera)
        self.look, self.camera = look, camera
        model = self._env.sys.mj_model
        self._mj_model = model
        hinges = [j for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE]
        self._joint_names = [model.joint(j).name for j in hinges]
        self._joint_ranges = np.rad2deg(model.jnt_range[hinges])
        self.state_names = ("root_x", "root_y", "root_z", "root_qw", "root_qx", "root_qy", "root_qz",
                            *self._joint_names)
        self._policy_qpos, self._policy_qvel = (None, None) if policy_states is None else self._load_policy_states()
        self._frames_fn = None
        self._rollout_fn = None

    def _load_policy_states(self) -> tuple[np.ndarray, np.ndarray]:
        """(qpos float64 [M, nq], qvel float64 [M, nv]): the states of all ``policy_states`` files, in file order."""
        nq, nv = self._mj_model.nq, self._mj_model.nv
        qpos_all, qvel_all = [], []
        for path in self.policy_states:
            try:
                with np.load(path) as f:
                    qpos, qvel = np.asarray(f["qpos"], np.float64), np.asarray(f["qvel"], np.float64)
            except (OSError, KeyError, ValueError) as e:
                raise VlmrmError(f"policy_states file {path!r} is not a readable .npz with 'qpos' and 'qvel' ({e}); "
                                 f"write it with `python -m experiments.evaluate --run DIR --save-states FILE`")
            if qpos.shape[-1:] != (nq,) or qvel.shape[-1:] != (nv,) or qpos.shape[:-1] != qvel.shape[:-1] or \
                    qpos.size == 0:
                raise VlmrmError(f"policy_states file {path!r} holds qpos {qpos.shape} and qvel {qvel.shape}; the "
                                 f"humanoid needs [..., {nq}] and [..., {nv}] with the same leading shape, non-empty")
            qpos_all.append(qpos.reshape(-1, nq))
            qvel_all.append(qvel.reshape(-1, nv))
        return np.concatenate(qpos_all), np.concatenate(qvel_all)

    @property
    def config(self) -> dict:
        """The settings that, with a seed, reproduce the frames."""
        return {"image_size": self.image_size, "shadows": self.shadows, "settle_steps": self.settle_steps,
                "mode_weights": list(self.mode_weights), "max_noise_deg": self.max_noise_deg,
                "max_drop": self.max_drop, "rollout_length": self.rollout_length, "look": self.look,
                "camera": self.camera, "policy_states": self.policy_states, "policy_fraction": self.policy_fraction}

    # --- pose sampling (NumPy, deterministic per seed) ---

    def _noisy(self, joints: dict[str, float], sigma: float, rng: np.random.Generator) -> dict[str, float]:
        angles = np.array([joints.get(n, -2.0 if n.endswith("knee") else 0.0) for n in self._joint_names])
        angles = angles + rng.normal(0.0, sigma, angles.shape)
        angles = np.clip(angles, self._joint_ranges[:, 0], self._joint_ranges[:, 1])
        return dict(zip(self._joint_names, angles.tolist()))

    def _random_yaw(self, rng: np.random.Generator) -> np.ndarray:
        yaw = rng.uniform(-np.pi / 4, np.pi / 4) if rng.random() < 0.6 else rng.uniform(-np.pi, np.pi)
        return _axis_angle_quat([0.0, 0.0, 1.0], yaw)

    def sample_pose(self, mode: str, rng: np.random.Generator) -> np.ndarray:
        """One ``qpos`` (float64 [24]) of a pose-sampling mode (``reference``, ``mixed`` or ``random``), resting on
        the floor at a random yaw, possibly raised by up to ``max_drop`` m.

        Raises:
            VlmrmError: on another mode.
        """
        if mode == "reference":
            names = list(REFERENCE_WEIGHTS)
            p = np.asarray([REFERENCE_WEIGHTS[n] for n in names])
            pose = REFERENCE_POSES[names[rng.choice(len(names), p=p / p.sum())]]
            joints = self._noisy(dict(pose.joints), rng.uniform(0.0, self.max_noise_deg), rng)
            root = np.asarray(pose.root_quat)
        elif mode == "mixed":
            legs = REFERENCE_POSES[rng.choice(list(REFERENCE_WEIGHTS))]
            arms = REFERENCE_POSES[rng.choice(ARM_POSES)]
            joints = {k: v for k, v in legs.joints.items() if k not in ARM_JOINTS}
            joints.update({k: v for k, v in arms.joints.items() if k in ARM_JOINTS})
            joints = self._noisy(joints, rng.uniform(0.0, self.max_noise_deg / 2), rng)
            root = np.asarray(legs.root_quat)
        elif mode == "random":
            low, high = self._joint_ranges[:, 0], self._joint_ranges[:, 1]
            joints = dict(zip(self._joint_names, rng.uniform(low, high).tolist()))
            if rng.random() < 0.5:
                axis = np.array([*rng.normal(size=2), 0.0])
                root = _axis_angle_quat(axis, rng.uniform(0.0, np.deg2rad(30.0)))
            else:
                root = rng.normal(size=4)
                root /= np.linalg.norm(root)
        else:
            raise VlmrmError(f"unknown pose mode {mode!r}; choose one of reference, mixed, random")
        qpos = pose_qpos(self._mj_model, ReferencePose(mode, joints, tuple(_quat_mul(self._random_yaw(rng), root))))
        if rng.random() < 0.2:
            qpos[2] += rng.uniform(0.0, self.max_drop)
        return qpos

    def interpolate_poses(self, start: ReferencePose, end: ReferencePose, num: int) -> np.ndarray:
        """Poses on the straight line between two poses' joint angles, each resting on the floor, for reward
        landscapes (e.g. standing -> kneeling).

        Args:
            start, end: poses (e.g. of :data:`REFERENCE_POSES`); the root orientation is ``start``'s for t < 0.5,
                else ``end``'s.
            num: number of poses (>= 2), t = 0 .. 1 evenly.

        Returns:
            float64 [num, 24] ``qpos``, no yaw, no drop.

        Raises:
            VlmrmError: if ``num`` < 2.
        """
        if num < 2:
            raise VlmrmError(f"num={num}: a sweep needs at least 2 poses")
        default = lambda name: -2.0 if name.endswith("knee") else 0.0  # noqa: E731
        out = []
        for t in np.linspace(0.0, 1.0, num):
            joints = {n: (1 - t) * start.joints.get(n, default(n)) + t * end.joints.get(n, default(n))
                      for n in self._joint_names}
            root = start.root_quat if t < 0.5 else end.root_quat
            out.append(pose_qpos(self._mj_model, ReferencePose("sweep", joints, root)))
        return np.stack(out)

    # --- JAX parts: rollouts, settling, rendering, labelling ---

    def _rollout_states(self, key: jax.Array, num: int) -> tuple[np.ndarray, np.ndarray]:
        """(qpos [num, 24], qvel [num, 23]) after 1..rollout_length random-action steps from reset."""
        if self._rollout_fn is None:
            env, length = self._env, self.rollout_length

            @jax.jit
            def run(key):
                reset_key, bias_key, noise_key, time_key = jax.random.split(key, 4)
                state = env.reset(reset_key)
                bias = jax.random.uniform(bias_key, (env.action_size,), minval=-1.0, maxval=1.0)
                stop = jax.random.randint(time_key, (), 1, length + 1)

                def body(carry, noise_key):
                    state, t, kept = carry
                    action = jnp.clip(bias + jax.random.normal(noise_key, bias.shape), -1.0, 1.0)
                    state = env.step(state, action)
                    t = t + 1
                    ps = state.pipeline_state
                    kept = jax.tree.map(lambda new, old: jnp.where(t == stop, new, old), (ps.qpos, ps.qvel), kept)
                    return (state, t, kept), None

                ps = state.pipeline_state
                (_, _, kept), _ = jax.lax.scan(body, (state, 0, (ps.qpos, ps.qvel)),
                                               jax.random.split(noise_key, length))
                return kept

            self._rollout_fn = jax.jit(jax.vmap(run))
        chunk = 128
        keys = jax.random.split(key, -(-num // chunk) * chunk)
        parts = [self._rollout_fn(keys[i:i + chunk]) for i in range(0, len(keys), chunk)]
        qpos = np.concatenate([np.asarray(p[0]) for p in parts])[:num]
        qvel = np.concatenate([np.asarray(p[1]) for p in parts])[:num]
        return qpos, qvel

    def frames_fn(self):
        """The jitted ``(qpos [n, 24], qvel [n, 23]) -> (images uint8 [n, S, S, 3], labels bool [n, C],
        settled qpos float32 [n, 24])``: settle, render, label."""
        if self._frames_fn is None:
            from vlmrm_jax.render import to_uint8

            env, steps = self._env, self.settle_steps
            render = env.make_render_fn(self.image_size, self.image_size, shadows=self.shadows)
            zero_ctrl = jnp.zeros(env.sys.act_size())
            keys = self.captions.keys

            def one(qpos, qvel):
                ps = env.pipeline_init(qpos, qvel)
                ps = jax.lax.fori_loop(0, steps, lambda _, s: env.pipeline_step(s, zero_ctrl), ps)
                return to_uint8(render(_Frame(ps))), ps

            @jax.jit
            def frames(qpos, qvel):
                images, ps = jax.vmap(one)(qpos, qvel)
                holds = evaluate_predicates(env.sys, ps, [k for k in keys if k in PREDICATES])
                labels = jnp.stack([holds[k] if k in holds else jnp.ones(qpos.shape[0], bool) for k in keys],
                                   axis=-1)
                return images, labels, ps.qpos.astype(jnp.float32)

            self._frames_fn = frames
        return self._frames_fn

    def sample_states(self, num_frames: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The initial states of ``num_frames`` frames: (qpos float64 [N, 24], qvel float64 [N, 23], modes int32
        [N]), modes drawn with ``mode_weights``, in a seed-determined order."""
        rng = np.random.default_rng(seed)
        modes = rng.choice(len(self.modes), size=num_frames, p=self.mode_weights).astype(np.int32)
        qpos = np.zeros((num_frames, self._mj_model.nq))
        qvel = np.zeros((num_frames, self._mj_model.nv))
        for i in np.flatnonzero(np.isin(modes, [self.modes.index(m) for m in self.pose_modes])):
            qpos[i] = self.sample_pose(self.modes[modes[i]], rng)
        rollout = np.flatnonzero(modes == self.modes.index("rollout"))
        if rollout.size:
            qpos[rollout], qvel[rollout] = self._rollout_states(jax.random.PRNGKey(seed), rollout.size)
        policy = np.flatnonzero(modes == self.modes.index("policy"))
        if policy.size:
            pick = rng.integers(len(self._policy_qpos), size=policy.size)
            qpos[policy], qvel[policy] = self._policy_qpos[pick], self._policy_qvel[pick]
        return qpos, qvel, modes

    def generate(self, num_frames: int, seed: int, chunk_size: int = 256) -> Iterator[FrameBatch]:
        """Yields ``num_frames`` captioned frames in chunks of ``chunk_size`` (the last one shorter).

        Raises:
            VlmrmError: if ``num_frames`` or ``chunk_size`` is not positive.
        """
        if num_frames <= 0 or chunk_size <= 0:
            raise VlmrmError(f"num_frames={num_frames}, chunk_size={chunk_size}: both must be positive")
        qpos, qvel, modes = self.sample_states(num_frames, seed)
        frames = self.frames_fn()
        for start in range(0, num_frames, chunk_size):
            stop = min(start + chunk_size, num_frames)
            pad = chunk_size - (stop - start)  # one compiled shape: pad the last chunk by repeating its first state
            q = np.concatenate([qpos[start:stop], np.repeat(qpos[start:start + 1], pad, axis=0)])
            v = np.concatenate([qvel[start:stop], np.repeat(qvel[start:start + 1], pad, axis=0)])
            images, labels, settled = (np.asarray(x)[: stop - start] for x in frames(q, v))
            yield FrameBatch(images=images, labels=labels, states=settled, modes=modes[start:stop])
