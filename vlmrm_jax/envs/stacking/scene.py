"""The block-stacking scene (Di Palo et al. 2023, after the RGB-stacking basket of Lee et al. 2021), as MJCF.

Written by this project (no third-party assets). World frame: z up, the basket centred on the origin, its floor at
z = 0. Contents:

* a textured ground plane (checker) 1.5 cm below a textured basket: a floor slab and four walls (visual boxes);
* three cubes of edge ``2 * CUBE_HALF`` (5 cm), red, green and blue (:data:`~.language.COLOURS` order), each on a
  free joint;
* a mocap end effector ("gripper": palm, two fingers and a wrist rod, visual only) with one weld equality per cube
  (``grasp_<colour>``, inactive in the model); the env grasps by switching ``mjx.Data.eq_active``. Each weld's
  ``relpose`` is set here explicitly to the centred grasp: the cube's centre ``GRIP_OFFSET`` below the gripper's
  origin, axes aligned with the gripper's (a parallel gripper centres and squares what it closes on). Without an
  explicit relpose MuJoCo would keep the cube's pose relative to the gripper at load time (FINDINGS.md);
* two fixed cameras at the basket's front corners (:mod:`.camera`), looking at the basket's centre from above;
* a light from above that casts shadows, and a dimmer fill light without.

Contacts are lean: every geom has ``contype = conaffinity = 0`` and only explicit ``<pair>``s collide (18 pairs,
at most 36 contacts): each cube (box) with the basket's floor plane (up to 4 contacts, with friction), the three
cube-cube pairs (box-box, up to 4 contacts each, with friction), and each cube's inscribed sphere with each of the
four wall planes (one frictionless contact each). The floor and wall colliders and the spheres are invisible
(geom group 3, not drawn; the spheres are massless). The wall planes lie at the inner faces of the visual walls;
planes are infinite, so to the physics the walls are infinitely high and long (a tumbling cube cannot leave the
basket), and a cube's corner can enter a wall by up to (sqrt 2 - 1) x CUBE_HALF (1 cm) when it turns 45 degrees
against it. Box-plane walls (4 contacts per pair) made the physics ~5x slower on the CPU. The gripper collides
with nothing.
"""

from __future__ import annotations

import functools

import mujoco

from vlmrm_jax.envs.stacking.camera import CAMERAS, camera_xml
from vlmrm_jax.envs.stacking.language import COLOURS

#: Half the cube edge (m): the cubes are 5 cm.
CUBE_HALF = 0.025
#: Half the basket's inner width (m), along x and y: the inner floor is 24 cm x 24 cm.
BASKET_HALF = 0.12
#: Basket wall thickness and height above the basket floor (m).
WALL_THICKNESS, WALL_HEIGHT = 0.01, 0.06
#: Thickness of the basket's floor slab (m); the ground plane lies this far below the basket floor (z = 0).
FLOOR_THICKNESS = 0.015
#: Distance (m) from the gripper's origin (the palm's centre) down to a grasped cube's centre.
GRIP_OFFSET = CUBE_HALF + 0.012
#: Physics time step (s).
TIMESTEP = 0.01
#: The gripper's resting position (m) at reset: above the basket's centre.
GRIPPER_HOME = (0.0, 0.0, 0.23)

_RGBA = {"red": "0.85 0.15 0.12 1", "green": "0.15 0.65 0.2 1", "blue": "0.15 0.3 0.85 1"}


def scene_xml() -> str:
    """The scene's MJCF text (see the module docstring for its contents)."""
    h, b, t, wh, ft = CUBE_HALF, BASKET_HALF, WALL_THICKNESS, WALL_HEIGHT, FLOOR_THICKNESS
    outer = b + t
    walls = []
    for name, pos, size in (("wall_px", (b + t / 2, 0), (t / 2, outer)), ("wall_nx", (-b - t / 2, 0), (t / 2, outer)),
                            ("wall_py", (0, b + t / 2), (b, t / 2)), ("wall_ny", (0, -b - t / 2), (b, t / 2))):
        walls.append(f'<geom name="{name}" type="box" material="basket" pos="{pos[0]} {pos[1]} {(wh - ft) / 2}" '
                     f'size="{size[0]} {size[1]} {(wh + ft) / 2}"/>')
    # Collider planes: normal (local +z) pointing into the basket.
    colliders = [f'<geom name="floor_collider" type="plane" group="3" size="{b} {b} 0.01"/>']
    for name, pos, euler in (("px", (b, 0), (0, -90, 0)), ("nx", (-b, 0), (0, 90, 0)),
                             ("py", (0, b), (90, 0, 0)), ("ny", (0, -b), (-90, 0, 0))):
        colliders.append(f'<geom name="collider_{name}" type="plane" group="3" pos="{pos[0]} {pos[1]} {wh / 2}" '
                         f'euler="{euler[0]} {euler[1]} {euler[2]}" size="{b} {wh / 2} 0.01"/>')
    cubes, welds, pairs = [], [], []
    for i, colour in enumerate(COLOURS):
        x = (i - 1) * 3 * h
        cubes.append(f'<body name="{colour}" pos="{x} 0 {h}"><freejoint name="{colour}"/>'
                     f'<geom name="{colour}" type="box" size="{h} {h} {h}" rgba="{_RGBA[colour]}" '
                     f'material="cube" mass="0.1"/>'
                     f'<geom name="{colour}_wall_collider" type="sphere" size="{h}" group="3" mass="0"/></body>')
        welds.append(f'<weld name="grasp_{colour}" body1="gripper" body2="{colour}" active="false" '
                     f'relpose="0 0 {-GRIP_OFFSET} 1 0 0 0"/>')
        pairs.append(f'<pair geom1="{colour}" geom2="floor_collider"/>')
        pairs.extend(f'<pair geom1="{colour}_wall_collider" geom2="collider_{w}" condim="1"/>'
                     for w in ("px", "nx", "py", "ny"))
    pairs.extend(f'<pair geom1="{a}" geom2="{c}"/>' for i, a in enumerate(COLOURS) for c in COLOURS[i + 1:])
    cameras = "\n    ".join(camera_xml(n) for n in CAMERAS)
    gx, gy, gz = GRIPPER_HOME
    finger_x = h + 0.006
    return f"""
<mujoco model="stacking">
  <compiler angle="degree" autolimits="true"/>
  <option timestep="{TIMESTEP}" iterations="4" ls_iterations="6" solver="Newton">
    <flag warmstart="enable"/>
  </option>
  <visual>
    <headlight ambient="0.25 0.25 0.25" diffuse="0.35 0.35 0.35" specular="0.1 0.1 0.1"/>
    <map znear="0.01"/>
    <quality shadowsize="4096"/>
  </visual>
  <default>
    <geom contype="0" conaffinity="0" friction="0.9 0.02 0.001" solref="0.02 1"/>
  </default>
  <asset>
    <texture name="ground" type="2d" builtin="checker" rgb1="0.42 0.4 0.38" rgb2="0.3 0.29 0.27" width="256"
             height="256" mark="edge" markrgb="0.22 0.21 0.2"/>
    <material name="ground" texture="ground" texrepeat="8 8" specular="0" shininess="0" reflectance="0"/>
    <texture name="basket" type="cube" builtin="flat" rgb1="0.72 0.6 0.42" width="64" height="64" mark="random"
             random="0.25" markrgb="0.55 0.44 0.3"/>
    <material name="basket" texture="basket" texuniform="true" specular="0.1" shininess="0.1"/>
    <material name="cube" specular="0.3" shininess="0.3"/>
    <material name="metal" rgba="0.6 0.62 0.66 1" specular="0.6" shininess="0.6"/>
  </asset>
  <worldbody>
    <light name="key" pos="0.15 -0.1 1.2" dir="-0.12 0.08 -1" directional="true" castshadow="true"
           diffuse="0.6 0.6 0.6" specular="0.2 0.2 0.2" ambient="0.05 0.05 0.05"/>
    <light name="fill" pos="-0.5 0.5 1.0" dir="0.4 -0.4 -1" directional="true" castshadow="false"
           diffuse="0.2 0.2 0.2" specular="0 0 0"/>
    <geom name="ground" type="plane" pos="0 0 {-ft}" size="1 1 0.05" material="ground"/>
    <body name="basket" pos="0 0 0">
      <geom name="basket_floor" type="box" material="basket" pos="0 0 {-ft / 2}" size="{b} {b} {ft / 2}"/>
      {chr(10).join('      ' + w for w in walls).strip()}
      {chr(10).join('      ' + c for c in colliders).strip()}
    </body>
    {cameras}
    <body name="gripper" mocap="true" pos="{gx} {gy} {gz}">
      <geom name="palm" type="box" group="1" material="metal" size="{finger_x + 0.006} 0.012 0.006"/>
      <geom name="finger_px" type="box" group="1" material="metal" pos="{finger_x} 0 -0.026" size="0.004 0.01 0.022"/>
      <geom name="finger_nx" type="box" group="1" material="metal" pos="{-finger_x} 0 -0.026" size="0.004 0.01 0.022"/>
      <geom name="wrist" type="box" group="1" material="metal" pos="0 0 0.1" size="0.008 0.008 0.094"/>
    </body>
    {chr(10).join('    ' + c for c in cubes).strip()}
  </worldbody>
  <contact>
    {chr(10).join('    ' + p for p in pairs).strip()}
  </contact>
  <equality>
    {chr(10).join('    ' + w for w in welds).strip()}
  </equality>
</mujoco>
"""


@functools.cache
def _model() -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_string(scene_xml())


def load_model() -> mujoco.MjModel:
    """A fresh ``mujoco.MjModel`` of the scene (compiled once per process, then copied)."""
    import copy

    return copy.deepcopy(_model())


__all__ = ["BASKET_HALF", "CUBE_HALF", "GRIPPER_HOME", "GRIP_OFFSET", "TIMESTEP",
           "load_model", "scene_xml"]
