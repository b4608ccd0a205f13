"""Batched RGB and segmentation rendering of MJX scenes by ray casting, pure JAX.

One primary ray per pixel finds the nearest geom (the segmentation image). Each hit is shaded like MuJoCo's
renderer (:mod:`vlmrm_jax.render.shading`): per-geom colours and materials, the model's textures sampled with
mip-mapping (:mod:`vlmrm_jax.render.textures`: checker floor, textured body, gradient skybox for rays that miss),
analytic surface normals, the model's lights plus the headlight, hard shadows from one extra ray per hit and
shadow-casting light, and the reflection in the first reflective plane (MuJoCo's ``reflectance``) from one more ray.
VLM-RM (Rocamonde et al. 2023, section 4.4) found this realism decisive for CLIP rewards (humanoid kneeling: 36%
success with MuJoCo's default look, 100% with textures and a better camera).

Two ray-casting backends give the same images (``RenderConfig.backend``):

- ``"tiles"`` (default, :mod:`vlmrm_jax.render.tiles`): rays are grouped in 8 x 8 screen tiles and each tile is
  tested only against the geoms that can reach it, with code specialised to each primitive type
  (:mod:`vlmrm_jax.render.intersect`); reflections are cast from the mirror image of the eye and shaded only where
  the mirror shows a geom; shadow rays start only where the light can contribute. Cost: roughly the screen area
  the geoms cover, not pixels x geoms.
- ``"mjx_ray"`` (the reference): one ``mujoco.mjx.ray`` call per ray against every geom, about
  ``H * W * supersample^2 * (1 + shadow-casting lights + reflections) * ngeom`` ray-primitive tests.

Measured on 2 CPU cores shared with other jobs (``python -m experiments.render_benchmark``, brax's humanoid, batch 16
under jit + vmap, load average 5): 64 x 64 with shadows and reflection 1.2 ms/image against mjx.ray's 14 (12x),
segmentation alone 15x; the tiles backend's time is spread over casting, shading, shadows and the reflection, no part
above a quarter (docs/performance.md).

Limits: cylinders, height fields and SDF geoms are invisible (as in ``mjx.ray``); transparency is ignored
(every visible geom is opaque); meshes are cast by ``mjx.ray`` in both backends and get normals from neighbouring
pixels (flat-shaded, and facing the ray in reflections) and textures projected from their local coordinates, not
their own texture coordinates; at most 4095 geoms (the tiles backend packs geom ids into distance bits).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from vlmrm_jax.errors import VlmrmError, check_positive_int
from vlmrm_jax.render.camera import Camera, CameraPose, FixedCamera, FreeCamera, TrackingCamera
from vlmrm_jax.render.intersect import BOX, MESH, GeomSet, unpack
from vlmrm_jax.render.shading import (DIRECTIONAL, SceneTables, geom_rows, light_frames, local_normals, shade, sky_rgb,
                                      texture_rgb, to_light)
from vlmrm_jax.render.textures import TextureAtlas
from vlmrm_jax.render.tiles import TileCaster, Tiling, where_needed

#: Secondary rays start this far (m) off the surface, along the normal, so they do not hit their own geom.
_RAY_OFFSET = 1e-3
#: Grazing angles are clamped to this cosine when computing a pixel's footprint on a surface.
_MIN_COS = 1e-3
#: Ray-casting backends: tile-culled primitive-specialised casting (the default) and one ``mjx.ray`` per ray (the
#: reference the default is tested against).
BACKENDS = ("tiles", "mjx_ray")
#: "tiles" backend: rays per tile side, and (tile, geom) pairs evaluated per loop step (measured fastest on a 2-core
#: CPU for brax's humanoid at 64-224 px: python -m experiments.render_benchmark).
_TILE, _PAGE = 8, 32


@dataclasses.dataclass(frozen=True)
class RenderConfig:
    """What to render and how; static (hashable), one per compiled renderer.

    Scene appearance (colours, materials, textures, lights, headlight, skybox) comes from the MJCF model itself, as
    in MuJoCo's renderer; these switches only turn effects off or fill in what the model lacks.

    Attributes:
        width, height: image size (pixels).
        shadows: ray-traced hard shadows from every light with ``castshadow`` (one extra ray per pixel and light).
        reflections: the mirror image in the first plane/box whose material has ``reflectance`` > 0 (one extra ray
            per pixel), as MuJoCo draws it.
        textures: sample the geoms' material textures (checker floor, textured body); False = flat colours.
            The skybox is drawn either way.
        background: RGB in [0, 1] where rays miss and the model has no skybox texture (MuJoCo's is black).
        geomgroup: which of the 6 geom groups are drawn; MuJoCo's default shows groups 0, 1, 2.
        supersample: k: anti-aliasing by averaging a k x k grid of rays per pixel (k^2 times the cost; MuJoCo's
            renderer uses 4x multisampling). The segmentation always uses one ray per pixel centre.
        backend: how rays are cast: "tiles" (default: primitive-specialised code, each screen tile's rays tested
            only against the geoms that can reach them; :mod:`vlmrm_jax.render.tiles`) or "mjx_ray" (every ray
            against every geom by ``mujoco.mjx.ray``; the slow reference). Same images up to float rounding.
    """

    width: int
    height: int
    shadows: bool = True
    reflections: bool = True
    textures: bool = True
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    geomgroup: tuple[bool, ...] = (True, True, True, False, False, False)
    supersample: int = 1
    backend: str = "tiles"

    def validate(self) -> None:
        """Raises VlmrmError on a non-positive size or supersample, a background outside [0, 1], a geomgroup not
        of length 6 or an unknown backend."""
        if self.backend not in BACKENDS:
            raise VlmrmError(f"RenderConfig.backend={self.backend!r} is unknown; use one of {list(BACKENDS)}.")
        for name, example in (("width", 224), ("height", 224), ("supersample", 2)):
            check_positive_int(f"RenderConfig.{name}", getattr(self, name), f", e.g. {example}.")
        if len(self.background) != 3 or not all(0.0 <= c <= 1.0 for c in self.background):
            raise VlmrmError(f"RenderConfig.background={self.background!r} must be 3 numbers in [0, 1] (RGB).")
        if len(self.geomgroup) != mujoco.mjNGROUP:
            raise VlmrmError(f"RenderConfig.geomgroup={self.geomgroup!r} must have {mujoco.mjNGROUP} entries "
                             "(one per geom group), e.g. (True, True, True, False, False, False).")


def _with_materials(model: mjx.Model) -> mjx.Model:
    """mjx.ray indexes ``mat_rgba`` unconditionally and fails on models without materials; give it one row."""
    if model.mat_rgba.shape[0]:
        return model
    return model.replace(mat_rgba=jnp.ones((1, 4), jnp.float32))


def _normalize(v: jax.Array) -> jax.Array:
    return v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _reflect(v: jax.Array, normal: jax.Array) -> jax.Array:
    return v - 2 * jnp.sum(v * normal, axis=-1, keepdims=True) * normal


class Renderer:
    """Renders one camera's view of an MJX scene; pure functions of (model, data), jittable and vmappable over data.

    Args:
        mj_model: the MuJoCo model the MJX model was made from (static: geom types, materials, textures, lights,
            camera/body names).
        camera: a :class:`TrackingCamera`, :class:`FreeCamera` or :class:`FixedCamera`.
        config: image size, effect switches and ray-casting backend.

    Raises:
        VlmrmError: on an invalid config (size, supersample, background, geomgroup, backend), a camera whose
            body/camera name is not in the model (the message lists the valid names) or whose distance/fovy is out
            of range, or a model of over 4095 geoms with the "tiles" backend.

    Example::

        renderer = Renderer(env.sys.mj_model, HUMANOID_CAMERA, RenderConfig(224, 224))  # envs.humanoid.camera
        images = jax.jit(jax.vmap(renderer.render, in_axes=(None, 0)))(env.sys, batch_of_data)  # [B, 224, 224, 3]
    """

    def __init__(self, mj_model: mujoco.MjModel, camera: Camera, config: RenderConfig):
        if not isinstance(camera, (TrackingCamera, FreeCamera, FixedCamera)):
            raise VlmrmError(f"camera={camera!r} must be a TrackingCamera, FreeCamera or FixedCamera "
                             "from vlmrm_jax.render.")
        config.validate()
        camera.validate(mj_model)
        self.mj_model, self.camera, self.config = mj_model, camera, config
        self._atlas = TextureAtlas.from_model(mj_model) if mj_model.ntex else None
        visible = np.asarray(config.geomgroup, bool)[np.clip(mj_model.geom_group, 0, mujoco.mjNGROUP - 1)]
        self._tables = SceneTables.from_model(mj_model, self._atlas, visible, geom_textures=config.textures)
        self._geomgroup = tuple(int(g) for g in config.geomgroup)
        self._shadow_lights = [i for i in range(self._tables.num_lights)
                               if config.shadows and self._tables.light_castshadow[i]]
        self._has_mesh = bool(np.any(mj_model.geom_type == MESH))
        self._types = tuple(sorted(set(np.asarray(mj_model.geom_type)[visible].tolist())))  # that rays can hit
        self._tan_half_fovy = float(np.tan(np.deg2rad(camera.fovy_deg(mj_model)) / 2))
        self._tiled = config.backend == "tiles"
        self._caster = TileCaster(GeomSet.from_model(mj_model, visible), _PAGE) if self._tiled else None
        tile = _TILE if self._tiled else 1  # tile 1 = row-major, the mjx_ray layout
        k = config.supersample
        self._grid = Tiling(config.height * k, config.width * k, tile)
        self._segmentation_grid = Tiling(config.height, config.width, tile)
        self._screens = {grid: grid.screen(self._tan_half_fovy) for grid in {self._grid, self._segmentation_grid}}
        self._sky = self._static_sky()

    def _static_sky(self) -> np.ndarray | None:
        """float32 [N, 3]: the sky behind every primary sample, for cameras whose orientation never changes (free
        and tracking cameras: only their eye moves), so the renderer does not look it up per frame; else None."""
        if not isinstance(self.camera, (TrackingCamera, FreeCamera)):
            return None
        with jax.ensure_compile_time_eval():
            pose = self.camera.pose(self.mj_model, mjx.put_data(self.mj_model, mujoco.MjData(self.mj_model)))
            xy = self._screens[self._grid][0]
            directions = _normalize(xy[..., :1] * pose.right + xy[..., 1:] * pose.up + pose.forward).reshape(-1, 3)
            return np.asarray(sky_rgb(self._tables, self._atlas, directions,
                                      jnp.asarray(self.config.background, jnp.float32)))

    # ------------------------------------------------------------------ rays

    def _mjx_ray(self, model: mjx.Model, data: mjx.Data, origins: jax.Array,
                 directions: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The reference backend: nearest hit of each ray by ``mjx.ray``, distance float32 [N] (-1: none) and geom
        id int32 [N] (-1: none); ``origins`` [3] (shared) or [N, 3]."""
        def cast(origin, direction):
            return mjx.ray(model, data, origin, direction, geomgroup=self._geomgroup)

        return jax.vmap(cast, in_axes=(None if origins.ndim == 1 else 0, 0))(origins, directions)

    def _primary(self, model: mjx.Model, data: mjx.Data, grid: Tiling):
        """Camera rays of a sample grid: pose, directions float32 [N, 3], distances [N] and geom ids [N] (-1: none),
        in the grid's tile-major layout."""
        pose = self.camera.pose(self.mj_model, data)
        xy, x_range, y_range = self._screens[grid]
        directions = _normalize(xy[..., :1] * pose.right + xy[..., 1:] * pose.up + pose.forward)
        if not self._tiled:
            dist, gid = self._mjx_ray(model, data, pose.eye, directions.reshape(-1, 3))
            return pose, directions.reshape(-1, 3), dist, gid
        keys = self._caster.nearest(model, data, pose.eye, directions, jnp.zeros(directions.shape[:2]),
                                    (pose.right, pose.up, pose.forward), x_range, y_range)
        dist, gid = unpack(keys.reshape(-1), self._caster.geoms.id_bits)
        return pose, directions.reshape(-1, 3), dist, gid

    def _surface(self, model: mjx.Model, data: mjx.Data, origins: jax.Array, directions: jax.Array,
                 dist: jax.Array, gid: jax.Array):
        """Hit points [N, 3], unit normals [N, 3] (world), points in the geom frame [N, 3] and the hit geoms' table
        rows (:class:`vlmrm_jax.render.shading.GeomRows`; misses read geom 0's)."""
        rows = geom_rows(model, data, self._tables, jnp.maximum(gid, 0))
        point = origins + dist[:, None] * directions
        # Elementwise products and sums, not einsum: XLA's CPU backend makes a batched dot of 3 x 3 matrix-vector
        # products, which does not fuse (and cost more than the rest of this function).
        local = jnp.sum(rows.xmat * (point - rows.pos)[:, :, None], axis=1)  # xmat^T (point - pos)
        normal = jnp.sum(rows.xmat * local_normals(rows.geom_type, local, rows.size, self._types)[:, None, :], axis=2)
        if self._has_mesh:  # no analytic normal: face the ray (replaced by screen-space normals for primary rays)
            normal = jnp.where((rows.geom_type == MESH)[:, None], -directions, normal)
        return point, normal, local, rows

    def _screen_space_normals(self, point: jax.Array, gid: jax.Array, directions: jax.Array,
                              grid: Tiling) -> jax.Array:
        """Normals of mesh hits from neighbouring samples' hit points (float32 [N, 3], facing the camera)."""
        p, g = grid.to_image(point, crop=False), grid.to_image(gid, crop=False)

        def difference(axis):
            fwd = jnp.roll(p, -1, axis) - p
            bwd = p - jnp.roll(p, 1, axis)
            same_fwd = (jnp.roll(g, -1, axis) == g)[..., None]
            return jnp.where(same_fwd, fwd, bwd)

        normal = _normalize(grid.from_image(jnp.cross(difference(1), difference(0))))
        return jnp.where(jnp.sum(normal * directions, axis=-1, keepdims=True) > 0, -normal, normal)

    # ------------------------------------------------------------------ shading

    def _visibility(self, model, data, point, normal, hit, to_lights, light_dist, grid: Tiling) -> jax.Array:
        """float32 [L, N]: 0 where a shadow ray toward the light finds an occluder short of it, else 1. Rays are cast
        only from hits where the light can contribute (facing it, or the light has an ambient part)."""
        tables = self._tables
        visibility = jnp.ones(light_dist.shape, jnp.float32)
        origin = point + _RAY_OFFSET * normal
        for i in self._shadow_lights:
            if not self._tiled:
                dist, gid = self._mjx_ray(model, data, origin, to_lights[i])
                blocked = (gid >= 0) & (dist < light_dist[i])
            else:
                matters = hit & ((jnp.sum(normal * to_lights[i], axis=-1) > 0) | bool(np.any(tables.light_ambient[i])))
                shape = (grid.count, grid.per_tile)
                directional = tables.light_type[i] == DIRECTIONAL
                direction = to_lights[i][0] if directional else to_lights[i].reshape(shape + (3,))
                blocked = self._caster.blocked(model, data, origin.reshape(shape + (3,)), direction,
                                               jnp.where(matters, light_dist[i], 0.0).reshape(shape)).reshape(-1)
            visibility = visibility.at[i].set(jnp.where(blocked, 0.0, 1.0))
        return visibility

    def _lit(self, data, point, normal, local, rows, directions, footprint, rgb_scale, head_dir, visibility=None):
        tables = self._tables
        rgb = rows.rgb * rgb_scale
        tex = texture_rgb(tables, self._atlas, rows, local, footprint)
        light_pos, light_dir = light_frames(tables, data)
        to_lights, light_dist = to_light(tables, light_pos, light_dir, point)
        if visibility is None:
            visibility = jnp.ones(light_dist.shape, jnp.float32)
        elif callable(visibility):
            visibility = visibility(to_lights, light_dist)
        return shade(tables, rows, normal, directions, rgb, tex, to_lights, light_dist, light_dir, visibility,
                     head_dir)

    def _footprint(self, dist: jax.Array, normal: jax.Array, directions: jax.Array, samples: int) -> jax.Array:
        """A sample's extent on the surface (m): distance x angle between samples / cos(incidence)."""
        cos = jnp.maximum(jnp.abs(jnp.sum(normal * directions, axis=-1)), _MIN_COS)
        angle = 2 * self._tan_half_fovy / (self.config.height * samples)
        return dist * angle / cos

    def _mirrored(self, model, data, pose: CameraPose, point, normal, dist, on_mirror, directions, grid: Tiling):
        """Distances [N] from the mirror and geom ids [N] (-1: none) of the camera rays reflected in the mirror."""
        mirrored = _reflect(directions, normal)
        if not self._tiled:
            dist2, gid2 = self._mjx_ray(model, data, point + _RAY_OFFSET * normal, mirrored)
            return mirrored, dist2, jnp.where(on_mirror, gid2, -1)
        # The reflected rays are camera rays from the mirror image of the eye, counted beyond the mirror.
        mirror = self._tables.mirror_geom
        axis = data.geom_xmat[mirror][:, 2]
        height = float(self.mj_model.geom_size[mirror, 2]) if self._tables.geom_type[mirror] == BOX else 0.0
        plane_point = data.geom_xpos[mirror] + height * axis
        eye = pose.eye - 2 * jnp.dot(pose.eye - plane_point, axis) * axis
        shape = (grid.count, grid.per_tile)
        t_min = jnp.where(on_mirror, dist + _RAY_OFFSET, jnp.inf).reshape(shape)
        _, x_range, y_range = self._screens[grid]
        keys = self._caster.nearest(model, data, eye, mirrored.reshape(shape + (3,)), t_min,
                                    (pose.right, pose.up, pose.forward), x_range, y_range, mirror=(plane_point, axis),
                                    active=jnp.any(on_mirror.reshape(shape), axis=1))
        total, gid2 = unpack(keys.reshape(-1), self._caster.geoms.id_bits)
        return mirrored, jnp.where(gid2 >= 0, total - dist, -1.0), gid2

    def _reflection(self, model, data, pose: CameraPose, point, normal, dist, gid, directions, grid: Tiling,
                    samples: int):
        """Colour [N, 3] added on the mirror geom: the scene mirrored in it, colours scaled by its reflectance."""
        tables = self._tables
        mirror = tables.mirror_geom
        on_mirror = gid == mirror
        if tables.geom_type[mirror] == BOX:  # MuJoCo mirrors in the box's +z face only
            on_mirror &= jnp.sum(normal * data.geom_xmat[mirror][:, 2], axis=-1) > 0.99
        mirrored, dist2, gid2 = self._mirrored(model, data, pose, point, normal, dist, on_mirror, directions, grid)
        head_dir = _reflect(pose.forward, normal)
        scale = float(tables.reflectance[mirror])

        def colour(i):  # reflected rays i (int32 [n]) that hit something -> colours [n, 3]
            point2, normal2, local2, rows2 = self._surface(model, data, point[i], mirrored[i], dist2[i], gid2[i])
            lit = self._lit(data, point2, normal2, local2, rows2, mirrored[i],
                            self._footprint(dist[i] + dist2[i], normal2, mirrored[i], samples), scale, head_dir[i])
            return jnp.clip(lit, 0.0, 1.0)

        seen = on_mirror & (gid2 >= 0)
        if not self._tiled:
            return jnp.where(seen[:, None], colour(jnp.arange(seen.shape[0])), 0.0)
        # Typically a few percent of the samples see something in the mirror (the humanoid at 64 px: 0-32 of
        # 4096): shade only those.
        return where_needed(seen, colour, jnp.zeros_like(point), max(128, seen.shape[0] // 32))

    def _colour(self, model: mjx.Model, data: mjx.Data) -> tuple[jax.Array, jax.Array]:
        """Colours float32 [N, 3] in [0, 1] and geom ids int32 [N] of the primary samples (tile-major)."""
        grid, samples = self._grid, self.config.supersample
        pose, directions, dist, gid = self._primary(model, data, grid)
        point, normal, local, rows = self._surface(model, data, pose.eye, directions, dist, gid)
        if self._has_mesh:
            normal = jnp.where((rows.geom_type == MESH)[:, None],
                               self._screen_space_normals(point, gid, directions, grid), normal)

        def visibility(to_lights, light_dist):
            return self._visibility(model, data, point, normal, gid >= 0, to_lights, light_dist, grid)

        colour = self._lit(data, point, normal, local, rows, directions,
                           self._footprint(dist, normal, directions, samples), 1.0, pose.forward, visibility)
        colour = jnp.clip(colour, 0.0, 1.0)
        if self.config.reflections and self._tables.mirror_geom >= 0:
            colour += self._reflection(model, data, pose, point, normal, dist, gid, directions, grid, samples)
        sky = self._sky if self._sky is not None else sky_rgb(self._tables, self._atlas, directions,
                                                             jnp.asarray(self.config.background, jnp.float32))
        return jnp.clip(jnp.where((gid >= 0)[:, None], colour, sky), 0.0, 1.0), gid

    # ------------------------------------------------------------------ public API

    def render_with_segmentation(self, model: mjx.Model, data: mjx.Data) -> tuple[jax.Array, jax.Array]:
        """The RGB image and the segmentation, sharing the primary rays when ``supersample`` is 1.

        Args:
            model: the ``mjx.Model`` (e.g. brax's ``env.sys``), passed explicitly so ``jit`` traces it.
            data: one state's ``mjx.Data`` (e.g. ``state.pipeline_state``); vmap this method over a batch.

        Returns:
            rgb: float32 [H, W, 3] in [0, 1]; segmentation: int32 [H, W], geom id per pixel, -1 where nothing is hit.
        """
        model = _with_materials(model)
        h, w, k = self.config.height, self.config.width, self.config.supersample
        rgb, gid = self._colour(model, data)
        rgb = self._grid.to_image(rgb).reshape(h, k, w, k, 3).mean(axis=(1, 3)).astype(jnp.float32)
        segmentation = self._grid.to_image(gid).astype(jnp.int32) if k == 1 else self.segmentation(model, data)
        return rgb, segmentation

    def render(self, model: mjx.Model, data: mjx.Data) -> jax.Array:
        """float32 [H, W, 3] in [0, 1]: the scene seen by the camera (arguments as in render_with_segmentation;
        under ``jit`` the unused segmentation costs nothing)."""
        return self.render_with_segmentation(model, data)[0]

    def segmentation(self, model: mjx.Model, data: mjx.Data) -> jax.Array:
        """int32 [H, W]: the geom id seen at each pixel centre, -1 where the ray hits nothing (primary rays only)."""
        _, _, _, gid = self._primary(_with_materials(model), data, self._segmentation_grid)
        return self._segmentation_grid.to_image(gid).astype(jnp.int32)


def to_uint8(images: jax.Array) -> jax.Array:
    """float images in [0, 1], any shape (e.g. [T, H, W, 3]) -> uint8 in [0, 255] (rounded, clipped), for videos."""
    return jnp.round(jnp.clip(jnp.asarray(images, jnp.float32), 0.0, 1.0) * 255.0).astype(jnp.uint8)
