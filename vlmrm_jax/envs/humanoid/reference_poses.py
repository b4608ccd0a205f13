"""Hand-built humanoid poses within the joint limits of brax's humanoid, resting on the floor.

They are the ground against which the pose predicates (:mod:`vlmrm_jax.envs.humanoid.predicates`) were designed and are
tested, and the pictures of ``docs/predicate_poses.png`` (``python -m experiments.predicate_poses``). Each pose gives
joint angles in degrees (joints not named stay at 0, except the knees, whose default is -2, the end of their range)
and the root's orientation; :func:`pose_qpos` turns one into a ``qpos`` whose lowest point touches the floor.

Arm joints mirror between sides as ``left_shoulder* = -right_shoulder*`` and ``left_elbow = right_elbow``; leg joints
mirror with equal angles. Knee flexion is negative; hip flexion (thigh forward) is negative ``hip_y``; ``hip_z < 0``
turns a flexed thigh outwards; ``hip_x < 0`` spreads the leg sideways (abduction, at most 25 deg).
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Mapping

import mujoco
import numpy as np

from vlmrm_jax.errors import VlmrmError

_S = float(np.sqrt(0.5))


def _legs(**angles: float) -> dict[str, float]:
    """The same angles for both legs: ``_legs(knee=-90)`` -> right_knee and left_knee."""
    return {f"{side}_{joint}": angle for joint, angle in angles.items() for side in ("right", "left")}


def _arms(shoulder1: float, shoulder2: float, elbow: float) -> dict[str, float]:
    """Mirrored arms from the right arm's angles."""
    return {"right_shoulder1": shoulder1, "right_shoulder2": shoulder2, "right_elbow": elbow,
            "left_shoulder1": -shoulder1, "left_shoulder2": -shoulder2, "left_elbow": elbow}


@dataclasses.dataclass(frozen=True)
class ReferencePose:
    """One hand-built pose.

    Attributes:
        description: what the pose shows.
        joints: joint name -> angle in degrees.
        root_quat: the torso's orientation, a unit quaternion (w, x, y, z).
    """

    description: str
    joints: Mapping[str, float]
    root_quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)


#: Pose name -> :class:`ReferencePose`.
REFERENCE_POSES: Mapping[str, ReferencePose] = MappingProxyType({
    "standing": ReferencePose("standing, arms in the default pose", {}),
    "wide_stance": ReferencePose("standing with the legs spread to the hip abduction limit", _legs(hip_x=-25)),
    "arms_raised": ReferencePose("standing, both arms raised above the head", _arms(-85, 20, -90)),
    "hands_on_hips": ReferencePose("standing, hands on the hips, elbows out", _arms(55, -65, -30)),
    "arms_crossed": ReferencePose("standing, forearms crossed in front of the belly", _arms(60, 10, -90)),
    "one_leg": ReferencePose("standing on the left leg, right knee raised to the front",
                             {"right_hip_y": -90, "right_knee": -90}),
    "kneeling": ReferencePose("kneeling upright on both knees, shins flat on the floor", _legs(knee=-90)),
    "kneeling_on_heels": ReferencePose("kneeling, sitting back on the heels", _legs(hip_y=-70, knee=-160)),
    "one_knee": ReferencePose("kneeling on the right knee, left foot planted in front",
                              {"right_knee": -90, "left_hip_y": -90, "left_knee": -90}),
    "squat": ReferencePose("deep squat on the feet", _legs(hip_y=-100, knee=-130)),
    "sitting": ReferencePose("sitting on the floor, legs stretched out in front", _legs(hip_y=-90)),
    "lotus": ReferencePose("seated, thighs turned out, knees bent: the closest reachable pose to the lotus",
                           {"abdomen_y": -30, **_legs(hip_x=-5, hip_z=-60, hip_y=-110, knee=-90)}),
    "splits": ReferencePose("seated straddle, legs straight and turned out to the hip limits: the closest reachable "
                            "pose to the side splits", _legs(hip_z=-60, hip_y=-90)),
    "bending_over": ReferencePose("standing, bent forward 60 deg at the hips",
                                  _legs(hip_y=-60), (float(np.cos(np.pi / 6)), 0.0, float(np.sin(np.pi / 6)), 0.0)),
    "lying_on_back": ReferencePose("lying on the back", {}, (_S, 0.0, -_S, 0.0)),
    "lying_face_down": ReferencePose("lying face down", {}, (_S, 0.0, _S, 0.0)),
    "lying_on_side": ReferencePose("lying on the left side", {}, (_S, _S, 0.0, 0.0)),
})


def _lowest_point(model: mujoco.MjModel, data: mujoco.MjData) -> float:
    """Height of the lowest surface point of the body's sphere and capsule geoms (m), after forward kinematics."""
    lowest = np.inf
    for geom in range(model.ngeom):
        if model.geom_bodyid[geom] == 0:  # the floor and other world geoms
            continue
        radius, z = model.geom_size[geom, 0], data.geom_xpos[geom, 2]
        if model.geom_type[geom] == mujoco.mjtGeom.mjGEOM_CAPSULE:
            axis_z = data.geom_xmat[geom].reshape(3, 3)[2, 2]
            z -= abs(axis_z) * model.geom_size[geom, 1]
        elif model.geom_type[geom] != mujoco.mjtGeom.mjGEOM_SPHERE:
            raise VlmrmError(f"geom {geom} has type {model.geom_type[geom]}; reference poses need brax's humanoid, "
                             f"made of spheres and capsules")
        lowest = min(lowest, z - radius)
    return float(lowest)


def pose_qpos(model: mujoco.MjModel, pose: ReferencePose) -> np.ndarray:
    """The ``qpos`` of ``pose`` with the root above the origin and the body's lowest point touching the floor.

    Args:
        model: the ``mujoco.MjModel`` of brax's humanoid (``env.sys.mj_model``).
        pose: a :class:`ReferencePose`.

    Returns:
        float64 [nq]: root position (m), root quaternion, then hinge angles (rad).

    Raises:
        VlmrmError: if a joint name is not a hinge of the model or an angle lies outside its range.
    """
    qpos = model.qpos0.copy()
    qpos[3:7] = pose.root_quat
    angles = {"right_knee": -2.0, "left_knee": -2.0, **pose.joints}
    for name, degrees in angles.items():
        joint = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
        if joint < 0 or model.jnt_type[joint] != mujoco.mjtJoint.mjJNT_HINGE:
            raise VlmrmError(f"the model has no hinge joint named {name!r}; use the joint names of brax's humanoid")
        low, high = np.rad2deg(model.jnt_range[joint])
        if not low - 1e-6 <= degrees <= high + 1e-6:
            raise VlmrmError(f"{name}={degrees} deg is outside its range [{low:.0f}, {high:.0f}] deg")
        qpos[model.jnt_qposadr[joint]] = np.deg2rad(degrees)
    data = mujoco.MjData(model)
    data.qpos[:] = qpos
    data.qpos[:3] = 0.0
    mujoco.mj_kinematics(model, data)
    qpos[:3] = (0.0, 0.0, -_lowest_point(model, data))
    return qpos


def pose_data(model: mujoco.MjModel, pose: ReferencePose) -> mujoco.MjData:
    """A ``mujoco.MjData`` in ``pose`` (see :func:`pose_qpos`) at rest, after ``mj_forward``; convert it for the
    predicates with ``mujoco.mjx.put_data(model, data)``."""
    data = mujoco.MjData(model)
    data.qpos[:] = pose_qpos(model, pose)
    mujoco.mj_forward(model, data)
    return data
