"""The humanoid's camera: VLM-RM's torso-tracking view."""

from vlmrm_jax.render.camera import TrackingCamera

#: The humanoid camera of VLM-RM (Rocamonde et al. 2023, section 4.4 and the authors' code): tracks the torso from
#: 3.5 m, azimuth 180 deg (looking along -x, at the humanoid's front), elevation -10 deg, look-at height 1.0 m.
#: Textures plus "a better camera" raised the paper's kneeling success from 91% to 100%.
HUMANOID_CAMERA = TrackingCamera("torso", distance=3.5, azimuth=180.0, elevation=-10.0, lookat_height=1.0)
