"""Batched ray-cast rendering of MJX scenes in pure JAX: RGB images and geom segmentation, jittable and vmappable.

Built on ``mujoco.mjx.ray`` (one primary ray per pixel) with MuJoCo's look: model colours and textures, lights,
headlight, shadows, floor reflection and skybox. See :mod:`vlmrm_jax.render.raycast` for the cost model.
Cameras and scenes belong to the environment families (:mod:`vlmrm_jax.envs`); CartPole's and MountainCar's
2-D renderers are in :mod:`vlmrm_jax.envs.classic.render`.
"""

from vlmrm_jax.render.camera import CameraPose, FixedCamera, FreeCamera, TrackingCamera
from vlmrm_jax.render.raycast import RenderConfig, Renderer, to_uint8

__all__ = [
    "CameraPose",
    "FixedCamera",
    "FreeCamera",
    "RenderConfig",
    "Renderer",
    "TrackingCamera",
    "to_uint8",
]
