"""The stacking scene's two fixed basket cameras (Di Palo et al. 2023 use two 128 x 128 basket cameras).

Both sit above the basket's front corners and look at its centre, so that together they see every cube even when
one hides another. They are MJCF cameras (``FixedCamera(name)`` in :mod:`vlmrm_jax.render`), written into the scene
by :func:`camera_xml`.
"""

from __future__ import annotations

import numpy as np

#: Names of the two fixed basket cameras (front-left, front-right corners).
CAMERAS: tuple[str, str] = ("basket_front_left", "basket_front_right")
#: The cameras' vertical field of view (deg).
CAMERA_FOVY = 40.0
#: Where the cameras look (m) and their distance to that point (m), azimuths (deg, from +x about +z) and
#: elevation (deg, negative = looking down).
CAMERA_LOOKAT = (0.0, 0.0, 0.03)
CAMERA_DISTANCE = 0.5
CAMERA_AZIMUTHS = (135.0, -135.0)
CAMERA_ELEVATION = -42.0


def camera_xml(name: str) -> str:
    """The MJCF ``<camera>`` element of camera ``name`` (one of :data:`CAMERAS`): fixed, at CAMERA_DISTANCE from
    CAMERA_LOOKAT with its azimuth and CAMERA_ELEVATION, oriented as MuJoCo's free camera would be."""
    azimuth = CAMERA_AZIMUTHS[CAMERAS.index(name)]
    az, el = np.deg2rad(azimuth), np.deg2rad(CAMERA_ELEVATION)
    forward = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    up = np.array([-np.sin(el) * np.cos(az), -np.sin(el) * np.sin(az), np.cos(el)])
    right = np.cross(forward, up)
    eye = np.asarray(CAMERA_LOOKAT) - CAMERA_DISTANCE * forward
    fmt = lambda v: " ".join(f"{x:.6f}" for x in v)  # noqa: E731
    return (f'<camera name="{name}" mode="fixed" pos="{fmt(eye)}" xyaxes="{fmt(right)} {fmt(up)}" '
            f'fovy="{CAMERA_FOVY}"/>')


__all__ = ["CAMERAS", "CAMERA_AZIMUTHS", "CAMERA_DISTANCE", "CAMERA_ELEVATION", "CAMERA_FOVY", "CAMERA_LOOKAT",
           "camera_xml"]
