"""Batched ray-cast rendering of MJX scenes in pure JAX: RGB images and geom segmentation, jittable and vmappable.

One primary ray per pixel, cast by tile-culled primitive-specialised code (``mujoco.mjx.ray`` kept as a reference
backend), with MuJoCo's look: model colours and textures, lights, headlight, shadows, floor reflection and skybox.
See :mod:`vlmrm_jax.render.raycast` for the backends and their cost.
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
