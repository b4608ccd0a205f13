"""The JAX ray caster against MuJoCo's own OpenGL renderer (segmentation and RGB) and MuJoCo's C ray caster
(shadows, reflections); shapes under jit and vmap; user errors.

MuJoCo's native renderer runs headless with MUJOCO_GL=egl (default here; Debian libegl1 + libgl1-mesa-dri) or
MUJOCO_GL=osmesa (Debian libosmesa6). MuJoCo picks its GL backend when it is first imported, possibly by another test
module, so the ``native`` fixture points mujoco.Renderer at the chosen backend explicitly.
"""

import dataclasses
import os

import brax
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from brax.io import mjcf
from mujoco import mjx
from mujoco.rendering.classic import gl_context

from experiments.render_compare import humanoid_pose
from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.envs.humanoid.camera import HUMANOID_CAMERA
from vlmrm_jax.render import (FixedCamera, FreeCamera, RenderConfig, Renderer,
                              TrackingCamera, to_uint8)

HUMANOID_XML = os.path.join(os.path.dirname(brax.__file__), "envs", "assets", "humanoid.xml")
GL_HELP = ("MuJoCo's native renderer needs a headless OpenGL: `apt-get install -y libegl1 libgl1-mesa-dri` "
           "(MUJOCO_GL=egl, the default here) or `apt-get install -y libosmesa6` with MUJOCO_GL=osmesa")

# Block-stacking-like scene: every geom type mjx.ray supports, no materials (mjx.ray alone fails on those), and
# MuJoCo's default light type, a spot light.
PRIMITIVES_XML = """
<mujoco>
  <asset><mesh name="tetra" vertex="0 0 0  .25 0 0  0 .25 0  0 0 .25"/></asset>
  <worldbody>
    <light pos="0.5 0.5 2" dir="-0.2 -0.2 -1" cutoff="35" exponent="5"/>
    <geom name="floor" type="plane" size="2 2 .1" rgba=".5 .6 .7 1"/>
    <geom name="box" type="box" size=".1 .15 .2" pos=".4 0 .2" euler="0 0 30" rgba=".8 .2 .2 1"/>
    <geom name="block" type="box" size=".08 .08 .08" pos=".4 0 .48" euler="0 0 10" rgba=".2 .8 .2 1"/>
    <geom name="ball" type="sphere" size=".12" pos="-.3 .2 .12" rgba=".2 .2 .8 1"/>
    <geom name="egg" type="ellipsoid" size=".08 .12 .2" pos="0 -.4 .2" euler="30 0 0"/>
    <geom name="pill" type="capsule" size=".06 .15" pos="-.2 -.25 .3" euler="0 60 0"/>
    <geom name="tetra" type="mesh" mesh="tetra" pos=".05 .45 0"/>
  </worldbody>
</mujoco>
"""

# Stacking-like scene for the backends' comparison: a reflective floor, a basket of boxes, cubes (one stacked, one
# tilted), a gripper of boxes and a capsule, a shadow-casting directional light and a second light.
BOXES_XML = """
<mujoco>
  <asset><material name="shiny" reflectance=".3"/></asset>
  <worldbody>
    <light pos=".15 -.1 1.2" dir="-.12 .08 -1" directional="true" castshadow="true"/>
    <light pos="-.5 .5 1" dir=".4 -.4 -1" directional="true" castshadow="false" diffuse=".3 .3 .3"/>
    <geom name="floor" type="plane" size="1 1 .05" material="shiny" rgba=".45 .42 .4 1"/>
    <geom name="basket" type="box" size=".2 .2 .01" pos="0 0 .01" rgba=".7 .6 .4 1"/>
    <geom name="wall_x" type="box" size=".01 .2 .04" pos=".2 0 .05" rgba=".7 .6 .4 1"/>
    <geom name="wall_y" type="box" size=".2 .01 .04" pos="0 .2 .05" rgba=".7 .6 .4 1"/>
    <geom name="red" type="box" size=".025 .025 .025" pos=".05 .03 .045" euler="0 0 20" rgba=".8 .1 .1 1"/>
    <geom name="green" type="box" size=".025 .025 .025" pos=".05 .03 .095" euler="0 0 -10" rgba=".1 .7 .1 1"/>
    <geom name="blue" type="box" size=".025 .025 .025" pos="-.08 -.05 .05" euler="20 10 45" rgba=".1 .2 .8 1"/>
    <geom name="palm" type="box" size=".04 .012 .006" pos="-.05 .08 .2" rgba=".6 .6 .65 1"/>
    <geom name="finger" type="box" size=".004 .01 .022" pos="-.08 .08 .17" rgba=".6 .6 .65 1"/>
    <geom name="wrist" type="capsule" size=".008 .05" pos="-.05 .08 .26" rgba=".6 .6 .65 1"/>
  </worldbody>
</mujoco>
"""


# ----------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def native(request):
    """MuJoCo's OpenGL renderer as a function ``(m, d, camera, width, height, segmentation=False)`` returning
    uint8 [H, W, 3], or with segmentation int [H, W] geom ids (-1: background).

    Points mujoco.Renderer at MUJOCO_GL's headless backend (egl unless set to osmesa) and fails, saying what to
    install, when there is none: these comparisons must not be skipped silently.
    """
    backend = os.environ.get("MUJOCO_GL", "").lower() or "egl"
    if backend in ("egl", "osmesa"):
        try:
            if backend == "osmesa":
                from mujoco.osmesa import GLContext
            else:
                from mujoco.egl import GLContext
        except Exception as error:  # noqa: BLE001 - any failure to load the backend has the same fix
            pytest.fail(f"{GL_HELP}; loading the {backend} backend failed: {error!r}")
        saved = gl_context.GLContext
        gl_context.GLContext = GLContext
        request.addfinalizer(lambda: setattr(gl_context, "GLContext", saved))

    def render(m, d, camera, width, height, segmentation=False):
        try:
            with mujoco.Renderer(m, height, width) as renderer:
                if segmentation:
                    renderer.enable_segmentation_rendering()
                renderer.update_scene(d, camera.to_mjv_camera(m, d))
                image = renderer.render()
        except Exception as error:  # noqa: BLE001
            pytest.fail(f"{GL_HELP}; mujoco.Renderer failed: {error!r}")
        if not segmentation:
            return image
        ids, types = image[..., 0], image[..., 1]
        assert np.all((types == mujoco.mjtObj.mjOBJ_GEOM) | (ids == -1))
        return ids

    return render


@pytest.fixture(scope="module")
def humanoid():
    return mujoco.MjModel.from_xml_path(HUMANOID_XML)


@pytest.fixture(scope="module")
def humanoid_sys(humanoid):
    """brax's System for the humanoid (an mjx.Model subclass), as ``env.sys`` of brax's MJX humanoid."""
    return mjcf.load_model(humanoid)


@pytest.fixture(scope="module")
def compiled():
    """jitted render/segmentation functions, one compile per (renderer settings), shared by the tests."""
    cache = {}

    def get(m, camera, config, method):
        key = (id(m), camera, config, method)
        if key not in cache:
            cache[key] = jax.jit(getattr(Renderer(m, camera, config), method))
        return cache[key]

    return get


# ----------------------------------------------------------------------------------------------- segmentation


@pytest.mark.parametrize("size", [(64, 64), (96, 72)])
@pytest.mark.parametrize("pose", ["standing", "random joints", "fallen"])
def test_segmentation_matches_mujoco_paper_camera(native, humanoid, humanoid_sys, compiled, pose, size):
    width, height = size
    d = humanoid_pose(humanoid, pose, seed=len(pose))
    segment = compiled(humanoid, HUMANOID_CAMERA, RenderConfig(width, height), "segmentation")
    ours = np.asarray(segment(humanoid_sys, mjx.put_data(humanoid, d)))
    reference = native(humanoid, d, HUMANOID_CAMERA, width, height, segmentation=True)
    assert ours.shape == (height, width) and ours.dtype == np.int32
    assert (ours >= 1).sum() > 30, "the humanoid should be in view"
    assert np.mean(ours == reference) >= 0.99


def test_segmentation_matches_mujoco_fixed_camera(native, humanoid, humanoid_sys, compiled):
    d = humanoid_pose(humanoid, "random joints", seed=3)
    camera = FixedCamera("track")
    ours = np.asarray(compiled(humanoid, camera, RenderConfig(80, 64), "segmentation")(
        humanoid_sys, mjx.put_data(humanoid, d)))
    reference = native(humanoid, d, camera, 80, 64, segmentation=True)
    assert (ours >= 1).sum() > 30
    assert np.mean(ours == reference) >= 0.99


def test_segmentation_matches_mujoco_on_primitives_without_materials(native, compiled):
    m = mujoco.MjModel.from_xml_string(PRIMITIVES_XML)
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    camera = FreeCamera((0.0, 0.0, 0.2), 2.2, 135.0, -35.0)
    ours = np.asarray(compiled(m, camera, RenderConfig(96, 72), "segmentation")(mjx.put_model(m), mjx.put_data(m, d)))
    reference = native(m, d, camera, 96, 72, segmentation=True)
    assert set(np.unique(ours)) == set(range(-1, m.ngeom)), "every geom (and the background) should be in view"
    assert np.mean(ours == reference) >= 0.99


# ----------------------------------------------------------------------------------------------- RGB


def test_rgb_looks_like_mujoco(native, humanoid, humanoid_sys, compiled):
    """Textured floor, textured body, skybox, lights, reflection: pixel colours close to MuJoCo's own render;
    flat colours without textures are far off (so the comparison can fail)."""
    d = humanoid_pose(humanoid, "random joints", seed=5)
    reference = native(humanoid, d, HUMANOID_CAMERA, 64, 64).astype(np.float32) / 255
    render = compiled(humanoid, HUMANOID_CAMERA, RenderConfig(64, 64), "render")
    flat = compiled(humanoid, HUMANOID_CAMERA, RenderConfig(64, 64, textures=False), "render")
    data = mjx.put_data(humanoid, d)
    error = np.abs(np.asarray(render(humanoid_sys, data)) - reference)
    flat_error = np.abs(np.asarray(flat(humanoid_sys, data)) - reference)
    assert np.median(error) < 0.01 and error.mean() < 0.04  # measured: 0.0014 and 0.025
    assert flat_error.mean() > 4 * error.mean()


@pytest.mark.parametrize("azimuth", [135.0, 60.0])
def test_rgb_matches_mujoco_on_primitives_with_a_spot_light(native, compiled, azimuth):
    """Flat colours, MuJoCo's default material, a spot light (cone, attenuation), shadows, box/ellipsoid/capsule
    normals and screen-space mesh normals (the tetrahedron is in view at azimuth 60)."""
    m = mujoco.MjModel.from_xml_string(PRIMITIVES_XML)
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    camera = FreeCamera((0.0, 0.3, 0.1), 1.5, azimuth, -30.0)
    ours = np.asarray(compiled(m, camera, RenderConfig(64, 64), "render")(mjx.put_model(m), mjx.put_data(m, d)))
    error = np.abs(ours - native(m, d, camera, 64, 64).astype(np.float32) / 255)
    assert np.median(error) < 0.01 and error.mean() < 0.015  # measured: 0.0016 and 0.009 (no shadows: 0.024)


def floor_pixels(m, d, camera, width, height):
    """With MuJoCo's C ray caster (mj_ray): the pixels whose ray hits the floor (geom 0), their hit points and the
    view directions (the camera's pose and pixel grid are checked against MuJoCo's renderer by the tests above)."""
    pose = camera.pose(m, mjx.put_data(m, d))
    eye, right, up, forward = (np.asarray(v, np.float64) for v in pose)
    tan_half = np.tan(np.deg2rad(m.vis.global_.fovy) / 2)
    pixels, points, directions = [], [], []
    geom = np.zeros(1, np.int32)
    for row in range(height):
        for col in range(width):
            x = ((col + 0.5) / width * 2 - 1) * tan_half * width / height
            y = (1 - (row + 0.5) / height * 2) * tan_half
            direction = x * right + y * up + forward
            direction /= np.linalg.norm(direction)
            dist = mujoco.mj_ray(m, d, eye, direction, None, 1, -1, geom)
            if geom[0] == 0:
                pixels.append((row, col))
                points.append(eye + dist * direction)
                directions.append(direction)
    return np.array(pixels), np.array(points), np.array(directions)


def test_shadows_darken_the_floor_exactly_where_mj_ray_finds_an_occluder(humanoid, humanoid_sys, compiled):
    m, size = humanoid, 48
    d = humanoid_pose(m, "fallen", seed=7)
    camera = TrackingCamera("torso", distance=2.5, azimuth=150.0, elevation=-45.0)
    data = mjx.put_data(m, d)
    lit = np.asarray(compiled(m, camera, RenderConfig(size, size, shadows=False, reflections=False), "render")(
        humanoid_sys, data))
    shaded = np.asarray(compiled(m, camera, RenderConfig(size, size, reflections=False), "render")(
        humanoid_sys, data))
    pixels, points, _ = floor_pixels(m, d, camera, size, size)
    # One directional light: a point is in shadow iff a geom lies toward the light, short of the light's plane.
    to_light = -m.light_dir[0] / np.linalg.norm(m.light_dir[0])
    geom = np.zeros(1, np.int32)
    occluded = []
    for point in points:
        dist = mujoco.mj_ray(m, d, point + 1e-3 * to_light, to_light, None, 1, -1, geom)
        occluded.append(geom[0] >= 0 and dist < np.dot(m.light_pos[0] - point, to_light))
    occluded = np.array(occluded)
    darker = (lit - shaded)[pixels[:, 0], pixels[:, 1]].max(axis=-1) > 0.05
    assert occluded.sum() >= 10, "the fallen humanoid should shadow some visible floor"
    assert np.mean(darker == occluded) >= 0.99
    assert np.all(shaded <= lit + 1e-5), "shadows only ever darken (up to float32 rounding)"


def test_reflection_shows_what_the_mirrored_ray_hits(humanoid, humanoid_sys, compiled):
    m, size = humanoid, 48
    d = humanoid_pose(m, "standing")
    config = RenderConfig(size, size, shadows=False)
    plain = np.asarray(compiled(m, HUMANOID_CAMERA, dataclasses.replace(config, reflections=False), "render")(
        humanoid_sys, mjx.put_data(m, d)))
    mirrored = np.asarray(compiled(m, HUMANOID_CAMERA, config, "render")(humanoid_sys, mjx.put_data(m, d)))
    pixels, points, directions = floor_pixels(m, d, HUMANOID_CAMERA, size, size)
    geom = np.zeros(1, np.int32)
    reflects_body = []
    for point, direction in zip(points, directions):
        mujoco.mj_ray(m, d, point + [0, 0, 1e-3], direction * [1, 1, -1], None, 1, -1, geom)
        reflects_body.append(geom[0] >= 1)
    reflects_body = np.array(reflects_body)
    changed = np.abs(mirrored - plain).max(axis=-1) > 1e-5  # above float32 rounding, which jax releases differ in
    floor_changed = changed[pixels[:, 0], pixels[:, 1]]
    assert reflects_body.sum() >= 5
    # Only floor pixels change, only where the mirrored ray hits the body, and on dark (unsaturated) tiles always.
    assert changed.sum() == floor_changed.sum()
    assert not np.any(floor_changed & ~reflects_body)
    dark = plain[pixels[:, 0], pixels[:, 1]].max(axis=-1) < 0.5
    assert np.all(floor_changed[dark & reflects_body])


# ----------------------------------------------------------------------------------------------- backends


def _both_backends(m, sys_, data, camera, config):
    """(rgb, segmentation) from the default tile-culled backend and from the mjx.ray reference."""
    return [[np.asarray(x) for x in jax.jit(Renderer(m, camera, dataclasses.replace(config, backend=backend))
                                            .render_with_segmentation)(sys_, data)]
            for backend in ("tiles", "mjx_ray")]


@pytest.mark.parametrize("scene", ["humanoid fallen", "primitives", "boxes"])
def test_tiles_backend_matches_the_mjx_ray_backend(humanoid, humanoid_sys, scene):
    """Same segmentation and colours (shadows, reflections, spot light, mesh) from the fast path and mjx.ray."""
    if scene == "humanoid fallen":
        m, sys_ = humanoid, humanoid_sys
        data = mjx.put_data(m, humanoid_pose(m, "fallen", seed=2))
        camera = TrackingCamera("torso", distance=2.5, azimuth=150.0, elevation=-45.0)
    else:
        m = mujoco.MjModel.from_xml_string(PRIMITIVES_XML if scene == "primitives" else BOXES_XML)
        d = mujoco.MjData(m)
        mujoco.mj_forward(m, d)
        sys_, data = mjx.put_model(m), mjx.put_data(m, d)
        camera = (FreeCamera((0.0, 0.3, 0.1), 1.5, 60.0, -30.0) if scene == "primitives"
                  else FreeCamera((0.0, 0.0, 0.08), 0.7, 120.0, -40.0))
    (rgb, seg), (ref_rgb, ref_seg) = _both_backends(m, sys_, data, camera, RenderConfig(48, 40))
    assert len(np.unique(ref_seg)) >= 4, "several geoms should be in view"
    assert np.mean(seg == ref_seg) >= 0.999
    error = np.abs(rgb - ref_rgb).max(axis=-1)
    assert error.mean() < 2e-3 and np.mean(error > 0.05) < 0.003


def test_unknown_backend_raises(humanoid):
    with pytest.raises(VlmrmError, match="backend='warp'.*'tiles'"):
        Renderer(humanoid, HUMANOID_CAMERA, RenderConfig(8, 8, backend="warp"))


# ----------------------------------------------------------------------------------------------- API


def test_shapes_dtypes_and_range_under_jit_and_vmap(humanoid, humanoid_sys):
    datas = [mjx.put_data(humanoid, humanoid_pose(humanoid, kind)) for kind in ("standing", "random joints", "fallen")]
    batch = jax.tree.map(lambda *x: jnp.stack(x), *datas)
    renderer = Renderer(humanoid, HUMANOID_CAMERA, RenderConfig(40, 32))
    both = jax.jit(jax.vmap(renderer.render_with_segmentation, in_axes=(None, 0)))
    rgb, seg = both(humanoid_sys, batch)
    assert rgb.shape == (3, 32, 40, 3) and rgb.dtype == jnp.float32
    assert seg.shape == (3, 32, 40) and seg.dtype == jnp.int32
    rgb = np.asarray(rgb)
    assert np.all(np.isfinite(rgb)) and rgb.min() >= 0.0 and rgb.max() <= 1.0
    assert not np.allclose(rgb[0], rgb[2]), "different states should give different images"
    single = jax.jit(renderer.segmentation)(humanoid_sys, datas[2])
    np.testing.assert_array_equal(np.asarray(seg[2]), np.asarray(single))
    frames = to_uint8(rgb)
    assert frames.dtype == jnp.uint8 and frames.shape == rgb.shape
    np.testing.assert_array_equal(np.asarray(frames), np.round(rgb * 255).astype(np.uint8))


def test_supersample_averages_the_finer_grid(humanoid, humanoid_sys):
    data = mjx.put_data(humanoid, humanoid_pose(humanoid, "fallen"))
    camera = TrackingCamera("torso", distance=2.0, azimuth=120.0, elevation=-30.0)
    fine = Renderer(humanoid, camera, RenderConfig(32, 24))
    coarse = Renderer(humanoid, camera, RenderConfig(16, 12, supersample=2))
    fine_rgb = np.asarray(jax.jit(fine.render)(humanoid_sys, data))
    rgb, seg = jax.jit(coarse.render_with_segmentation)(humanoid_sys, data)
    np.testing.assert_allclose(np.asarray(rgb), fine_rgb.reshape(12, 2, 16, 2, 3).mean(axis=(1, 3)), atol=1e-5)
    one_ray = Renderer(humanoid, camera, RenderConfig(16, 12))
    np.testing.assert_array_equal(np.asarray(seg), np.asarray(jax.jit(one_ray.segmentation)(humanoid_sys, data)))


def test_unknown_camera_body_and_bad_sizes_raise(humanoid):
    with pytest.raises(VlmrmError, match="'nope'.*'track'"):
        Renderer(humanoid, FixedCamera("nope"), RenderConfig(8, 8))
    with pytest.raises(VlmrmError, match="'chest'.*'torso'"):
        Renderer(humanoid, TrackingCamera("chest", 3.0, 0.0, 0.0), RenderConfig(8, 8))
    with pytest.raises(VlmrmError, match="width=0"):
        Renderer(humanoid, HUMANOID_CAMERA, RenderConfig(0, 8))
    with pytest.raises(VlmrmError, match="height=-2"):
        Renderer(humanoid, HUMANOID_CAMERA, RenderConfig(8, -2))
    with pytest.raises(VlmrmError, match="supersample=0"):
        Renderer(humanoid, HUMANOID_CAMERA, RenderConfig(8, 8, supersample=0))
    with pytest.raises(VlmrmError, match="distance"):
        Renderer(humanoid, FreeCamera((0, 0, 0), 0.0, 0.0, 0.0), RenderConfig(8, 8))
