"""Cameras for the JAX ray caster, with the conventions of MuJoCo's own renderer.

A camera gives, for one MJX state, an eye position and an orthonormal frame (right, up, forward) in world
coordinates, plus a vertical field of view. The free/tracking cameras follow ``mjvCamera`` (type FREE): with azimuth
``az`` and elevation ``el`` in degrees,

    forward = (cos el cos az, cos el sin az, sin el),  up = (-sin el cos az, -sin el sin az, cos el),
    eye = lookat - distance * forward,  right = forward x up,

so a test can set a native ``mujoco.MjvCamera`` to the same numbers and compare images pixel by pixel. Fixed cameras
use the MJCF camera's ``cam_xpos`` / ``cam_xmat`` (columns: right, up, backward) and ``cam_fovy``.

Each environment family defines its own cameras (e.g. :data:`vlmrm_jax.envs.humanoid.camera.HUMANOID_CAMERA`).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from vlmrm_jax.errors import VlmrmError


class CameraPose(NamedTuple):
    """One camera's pose in world coordinates (metres); every field float32 [3] and the frame orthonormal."""

    eye: jax.Array
    right: jax.Array
    up: jax.Array
    forward: jax.Array


def _orbit_pose(lookat: jax.Array, distance: float, azimuth: float, elevation: float) -> CameraPose:
    """The pose of MuJoCo's free camera (``mjvCamera``) orbiting ``lookat`` (float32 [3], metres)."""
    az, el = np.deg2rad(azimuth), np.deg2rad(elevation)
    forward = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], np.float32)
    up = np.array([-np.sin(el) * np.cos(az), -np.sin(el) * np.sin(az), np.cos(el)], np.float32)
    right = np.cross(forward, up)
    eye = jnp.asarray(lookat, jnp.float32) - distance * forward
    return CameraPose(eye, jnp.asarray(right), jnp.asarray(up), jnp.asarray(forward))


def _mjv_free_camera(lookat, distance: float, azimuth: float, elevation: float) -> mujoco.MjvCamera:
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_FREE
    camera.lookat[:] = lookat
    camera.distance, camera.azimuth, camera.elevation = distance, azimuth, elevation
    return camera


def _check_orbit(distance: float, fovy: float | None) -> None:
    if not distance > 0:
        raise VlmrmError(f"camera distance={distance!r} m must be > 0; set a positive distance.")
    if fovy is not None and not 0 < fovy < 180:
        raise VlmrmError(f"camera fovy={fovy!r} deg must be in (0, 180); set e.g. fovy=45 or None for the model's.")


def _name_error(kind: str, name: str, names: list[str], field: str) -> VlmrmError:
    return VlmrmError(f"{kind} {name!r} is not in the model; set {field} to one of {names}.")


@dataclasses.dataclass(frozen=True)
class TrackingCamera:
    """A free camera that follows a body: MuJoCo's free camera with ``lookat`` at the body's position.

    Attributes:
        body: name of the tracked body; its world position ``data.xpos[body]`` is the look-at point.
        distance: eye-to-look-at distance (m).
        azimuth: degrees, counter-clockwise about +z from +x (MuJoCo's convention: 180 looks along -x).
        elevation: degrees; negative looks down.
        lookat_height: if set, the look-at point's z (m) is this fixed height instead of the body's z.
        fovy: vertical field of view (deg); None = the model's ``vis.global_.fovy``.
    """

    body: str
    distance: float
    azimuth: float
    elevation: float
    lookat_height: float | None = None
    fovy: float | None = None

    def validate(self, mj_model: mujoco.MjModel) -> None:
        """Raises VlmrmError if the body does not exist or distance/fovy are out of range."""
        _check_orbit(self.distance, self.fovy)
        if mujoco.mj_name2id(mj_model, mujoco.mjtObj.mjOBJ_BODY, self.body) < 0:
            names = [mj_model.body(i).name for i in range(mj_model.nbody)]
            raise _name_error("tracked body", self.body, names, "TrackingCamera.body")

    def fovy_deg(self, mj_model: mujoco.MjModel) -> float:
        """Vertical field of view in degrees."""
        return float(mj_model.vis.global_.fovy if self.fovy is None else self.fovy)

    def pose(self, mj_model: mujoco.MjModel, data: mjx.Data) -> CameraPose:
        """The camera pose for one state (jittable; ``data`` may be traced)."""
        lookat = data.xpos[mj_model.body(self.body).id]
        if self.lookat_height is not None:
            lookat = lookat.at[2].set(self.lookat_height)
        return _orbit_pose(lookat, self.distance, self.azimuth, self.elevation)

    def to_mjv_camera(self, mj_model: mujoco.MjModel, mj_data: mujoco.MjData) -> mujoco.MjvCamera:
        """The same view for MuJoCo's native renderer (``mujoco.Renderer.update_scene(mj_data, camera)``); the
        native free camera always uses the model's ``vis.global_.fovy``."""
        lookat = np.array(mj_data.xpos[mj_model.body(self.body).id])
        if self.lookat_height is not None:
            lookat[2] = self.lookat_height
        return _mjv_free_camera(lookat, self.distance, self.azimuth, self.elevation)


@dataclasses.dataclass(frozen=True)
class FreeCamera:
    """A static free camera (MuJoCo's ``mjvCamera`` of type FREE), for scenes such as CartPole or block stacking.

    Attributes:
        lookat: look-at point (m, world frame).
        distance: eye-to-look-at distance (m).
        azimuth, elevation: degrees, as in :class:`TrackingCamera`.
        fovy: vertical field of view (deg); None = the model's ``vis.global_.fovy``.
    """

    lookat: tuple[float, float, float]
    distance: float
    azimuth: float
    elevation: float
    fovy: float | None = None

    def validate(self, mj_model: mujoco.MjModel) -> None:
        """Raises VlmrmError on a look-at point that is not 3 numbers or distance/fovy out of range."""
        del mj_model
        _check_orbit(self.distance, self.fovy)
        if len(self.lookat) != 3:
            raise VlmrmError(f"FreeCamera.lookat={self.lookat!r} must be 3 numbers (x, y, z) in metres.")

    def fovy_deg(self, mj_model: mujoco.MjModel) -> float:
        """Vertical field of view in degrees."""
        return float(mj_model.vis.global_.fovy if self.fovy is None else self.fovy)

    def pose(self, mj_model: mujoco.MjModel, data: mjx.Data) -> CameraPose:
        """The camera pose (constant; ``data`` is unused)."""
        del mj_model, data
        return _orbit_pose(jnp.asarray(self.lookat, jnp.float32), self.distance, self.azimuth, self.elevation)

    def to_mjv_camera(self, mj_model: mujoco.MjModel, mj_data: mujoco.MjData) -> mujoco.MjvCamera:
        """The same view for MuJoCo's native renderer (which always uses the model's ``vis.global_.fovy``)."""
        del mj_model, mj_data
        return _mjv_free_camera(self.lookat, self.distance, self.azimuth, self.elevation)


@dataclasses.dataclass(frozen=True)
class FixedCamera:
    """A camera defined in the MJCF (``<camera name=...>``), in whatever mode it has there (fixed, track, ...).

    Its pose is ``data.cam_xpos`` / ``data.cam_xmat`` (computed by ``mjx.forward``) and its field of view the model's
    ``cam_fovy``. Cameras with explicit intrinsics (``sensorsize``) or orthographic projection are not supported.

    Attributes:
        name: the camera's name in the MJCF.
    """

    name: str

    def validate(self, mj_model: mujoco.MjModel) -> None:
        """Raises VlmrmError if the model has no camera of this name, or it is orthographic/uses intrinsics."""
        cam_id = mujoco.mj_name2id(mj_model, mujoco.mjtObj.mjOBJ_CAMERA, self.name)
        if cam_id < 0:
            names = [mj_model.camera(i).name for i in range(mj_model.ncam)]
            raise _name_error("camera", self.name, names, "FixedCamera.name")
        if mj_model.cam_projection[cam_id] != mujoco.mjtProjection.mjPROJ_PERSPECTIVE or np.any(
                mj_model.cam_sensorsize[cam_id] > 0):
            raise VlmrmError(f"camera {self.name!r} is orthographic or uses sensorsize intrinsics, which the ray "
                             "caster does not support; give it a fovy instead, or use a FreeCamera.")

    def fovy_deg(self, mj_model: mujoco.MjModel) -> float:
        """Vertical field of view in degrees (the model's ``cam_fovy``)."""
        return float(mj_model.cam_fovy[mj_model.camera(self.name).id])

    def pose(self, mj_model: mujoco.MjModel, data: mjx.Data) -> CameraPose:
        """The camera pose for one state (jittable)."""
        cam_id = mj_model.camera(self.name).id
        xmat = data.cam_xmat[cam_id]
        return CameraPose(data.cam_xpos[cam_id], xmat[:, 0], xmat[:, 1], -xmat[:, 2])

    def to_mjv_camera(self, mj_model: mujoco.MjModel, mj_data: mujoco.MjData) -> mujoco.MjvCamera:
        """The same camera for MuJoCo's native renderer."""
        del mj_data
        camera = mujoco.MjvCamera()
        camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        camera.fixedcamid = mj_model.camera(self.name).id
        return camera


Camera = TrackingCamera | FreeCamera | FixedCamera
