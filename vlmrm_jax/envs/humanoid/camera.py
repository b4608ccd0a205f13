"""The humanoid's cameras: the torso-tracking view, and the authors' camera as it really rendered.

VLM-RM's code (Rocamonde et al. 2023) passed gymnasium the camera config ``trackbodyid 1, distance 3.5,
lookat (0, 0, 1), elevation -10, azimuth 180`` and set ``camera_id = -1``. gymnasium's ``MujocoRenderer`` turns
camera id -1 into ``mjCAMERA_FREE`` and copies the config's fields onto it; MuJoCo follows ``trackbodyid`` only for
``mjCAMERA_TRACKING``, so the authors' camera stood still, looking at (0, 0, 1) from 3.5 m in front of the
humanoid's start. ``python -m experiments.humanoid_camera`` renders both paths with MuJoCo's own renderer over an
episode in which the humanoid walks away and writes docs/humanoid_camera.png (findings: docs/humanoid_setup.md).
"""

from vlmrm_jax.render.camera import FreeCamera, TrackingCamera

#: A free camera following the torso from 3.5 m, azimuth 180 deg (looking along -x, at the humanoid's front),
#: elevation -10 deg, look-at height fixed at 1.0 m: the authors' numbers with the tracking the paper describes
#: ("textures plus a better camera": 91% -> 100% kneeling). The shipped humanoid-clip-tiny was trained on it.
TRACKING_CAMERA = TrackingCamera("torso", distance=3.5, azimuth=180.0, elevation=-10.0, lookat_height=1.0)
#: The authors' camera as their code rendered it: fixed in the world, looking at (0, 0, 1) m from 3.5 m, azimuth
#: 180 deg, elevation -10 deg (the eye at (3.45, 0, 1.61) m). At reset (torso at x = y = 0) it sees exactly what
#: :data:`TRACKING_CAMERA` sees; the views part as the humanoid moves.
PAPER_CAMERA = FreeCamera(lookat=(0.0, 0.0, 1.0), distance=3.5, azimuth=180.0, elevation=-10.0)
#: A closer torso-tracking camera from the humanoid's front left (azimuth 135 deg, 2.8 m, look-at height 0.9 m, still
#: fitting raised hands): not the paper's. Seen from the front (azimuth 180) at 64 px, kneeling and squatting
#: differ by a few pixels; seen at 45 deg to the side, the shins on the floor of a kneel and the level thighs of a
#: squat are plain (docs/humanoid_setup.md, "Kneeling or squatting").
OBLIQUE_CAMERA = TrackingCamera("torso", distance=2.8, azimuth=135.0, elevation=-10.0, lookat_height=0.9)
#: Camera name (``Humanoid(camera=...)``) -> camera.
CAMERAS = {"tracking": TRACKING_CAMERA, "paper": PAPER_CAMERA, "oblique": OBLIQUE_CAMERA}
#: The tracking camera, under the name older code imports.
HUMANOID_CAMERA = TRACKING_CAMERA
