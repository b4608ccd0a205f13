"""Surface shading of ray hits, following MuJoCo's OpenGL renderer (``render_gl3.c``, fixed-function lighting).

For a hit on geom g at point p with unit normal n, seen along ray direction d, with the geom's colour ``rgba``
(MuJoCo's rule: the geom's rgba, or its material's when the geom's is the default 0.5 0.5 0.5 1), texture colour
``tex`` and material (emission, specular, shininess), the colour is

    tex * (emission * rgba + sum_l vis_l * att_l * (ambient_l * rgba + diffuse_l * rgba * max(n.L_l, 0)
                                                   + [n.L_l > 0] specular_l * specular * max(n.h_l, 0)^(128 shininess)))

over the model's lights and the camera's headlight (``vis.headlight``: directional along the view, ambient .1,
diffuse .4, specular .5 by default), with L_l the unit vector to the light, h_l = normalize(L_l - d) (OpenGL's local
viewer), att_l the spot cone and distance attenuation, and vis_l in {0, 1} the shadow-ray visibility (ray-traced
here, shadow-mapped in MuJoCo). GL_MODULATE multiplies the whole lit colour by the texture, as here.

Everything static (geom types, materials, texture mapping, lights) is read from ``mj_model`` once into NumPy tables;
colours are read from the (traced) ``mjx.Model`` at render time so that randomised ``geom_rgba`` shows.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from vlmrm_jax.render.intersect import BOX, CAPSULE, CYLINDER, ELLIPSOID, PLANE, SPHERE
from vlmrm_jax.render.textures import TextureAtlas, cube_face_uv

_NO_TEXTURE, _TEXTURE_2D, _TEXTURE_CUBE = 0, 1, 2
DIRECTIONAL = int(mujoco.mjtLightType.mjLIGHT_DIRECTIONAL)
_SPOT = int(mujoco.mjtLightType.mjLIGHT_SPOT)
#: mjvGeom's material defaults for geoms without a material (mjv_initGeom).
_DEFAULT_SPECULAR, _DEFAULT_SHININESS = 0.5, 0.5


def _visual_size(geom_type: int, size: np.ndarray) -> np.ndarray:
    """The size MuJoCo's renderer scales a primitive by (mjvGeom.size), which sets its texture coordinates."""
    if geom_type == SPHERE:
        return np.full(3, size[0])
    if geom_type in (CAPSULE, CYLINDER):
        return np.array([size[0], size[0], size[1]])
    return np.asarray(size, np.float64)


@dataclasses.dataclass(frozen=True)
class SceneTables:
    """Static per-geom and per-light tables read from ``mj_model`` (all NumPy; G = ngeom, L = active lights).

    Attributes:
        geom_type: int32 [G], mjtGeom.
        geom_matid: int32 [G], material id or -1.
        emission, specular, shininess, reflectance: float32 [G], the geom's material (mjvGeom defaults without one).
        tex_kind: int32 [G]: 0 none, 1 2D (planar projection), 2 cube (direction lookup).
        tex_slot: int32 [G], atlas slot of the texture's first face.
        tex_scale: float32 [G, 3]: 2D: texture repeats per metre along local x, y (MuJoCo's texrepeat, divided by
            the geom size unless texuniform); cube: factor from local coordinates (m) to the lookup vector.
        tex_density: float32 [G], level-0 texels per metre of surface (per unit of lookup vector for cube maps),
            for level-of-detail selection.
        mirror_geom: the reflecting geom (MuJoCo renders only the first plane/box with reflectance > 0), or -1.
        light_*: float32 arrays over the active lights: body id, local position and direction, type, castshadow,
            ambient/diffuse/specular [L, 3], attenuation [L, 3], cutoff (deg), exponent.
        skybox_slot: atlas slot of the first skybox texture's +X face, or -1.
        headlight: (ambient, diffuse, specular) float32 [3, 3], zero when the model's headlight is off.
    """

    geom_type: np.ndarray
    geom_matid: np.ndarray
    emission: np.ndarray
    specular: np.ndarray
    shininess: np.ndarray
    reflectance: np.ndarray
    tex_kind: np.ndarray
    tex_slot: np.ndarray
    tex_scale: np.ndarray
    tex_density: np.ndarray
    mirror_geom: int
    light_body: np.ndarray
    light_pos: np.ndarray
    light_dir: np.ndarray
    light_type: np.ndarray
    light_castshadow: np.ndarray
    light_ambient: np.ndarray
    light_diffuse: np.ndarray
    light_specular: np.ndarray
    light_attenuation: np.ndarray
    light_cutoff: np.ndarray
    light_exponent: np.ndarray
    skybox_slot: int
    headlight: np.ndarray

    @classmethod
    def from_model(cls, mj_model: mujoco.MjModel, atlas: TextureAtlas | None, visible: np.ndarray,
                   geom_textures: bool = True) -> "SceneTables":
        """Reads the tables.

        Args:
            mj_model: the model; atlas: its textures (None if it has none); visible: bool [G], geoms that are drawn;
            geom_textures: False = flat geom colours (the skybox still comes from ``atlas``).
        """
        m = mj_model
        ngeom = m.ngeom
        matid = m.geom_matid.astype(np.int32)
        has_mat = matid >= 0
        mat = np.maximum(matid, 0)

        def material(field, default):
            values = getattr(m, field)
            return np.where(has_mat, values[mat] if m.nmat else default, default).astype(np.float32)

        emission = material("mat_emission", 0.0)
        specular = material("mat_specular", _DEFAULT_SPECULAR)
        shininess = material("mat_shininess", _DEFAULT_SHININESS)
        reflectance = material("mat_reflectance", 0.0)

        tex_kind = np.zeros(ngeom, np.int32)
        tex_slot = np.zeros(ngeom, np.int32)
        tex_scale = np.ones((ngeom, 3), np.float32)
        tex_density = np.ones(ngeom, np.float32)
        role = int(mujoco.mjtTextureRole.mjTEXROLE_RGB)
        for g in range(ngeom):
            if not geom_textures or atlas is None or matid[g] < 0 or m.mat_texid[matid[g], role] < 0:
                continue
            tex = int(m.mat_texid[matid[g], role])
            width, height = int(atlas.level_width[atlas.first_slot[tex], 0]), int(
                atlas.level_height[atlas.first_slot[tex], 0])
            vsize = _visual_size(int(m.geom_type[g]), m.geom_size[g])
            uniform = bool(m.mat_texuniform[matid[g]])
            tex_slot[g] = atlas.first_slot[tex]
            if int(m.tex_type[tex]) == int(mujoco.mjtTexture.mjTEXTURE_2D):
                # render_gl3.c settexture: s = 0.5 * scl * x_object - 0.5, scl = texrepeat (* size if texuniform),
                # with object coordinates = local / size for scaled primitives (and planes).
                repeat = m.mat_texrepeat[matid[g]].astype(np.float64)
                per_metre = np.where((vsize[:2] > 0) & (not uniform), repeat / np.maximum(vsize[:2], 1e-12), repeat)
                tex_kind[g] = _TEXTURE_2D
                tex_scale[g, :2] = per_metre
                tex_density[g] = max(0.5 * per_metre[0] * width, 0.5 * per_metre[1] * height)
            else:
                # cube: lookup vector = object coordinates, times the size if texuniform (i.e. local coordinates).
                tex_kind[g] = _TEXTURE_CUBE
                tex_scale[g] = 1.0 if uniform else 1.0 / np.maximum(vsize, 1e-12)
                tex_density[g] = 0.5 * width

        reflective = (visible & (reflectance > 0)
                      & np.isin(m.geom_type, (PLANE, BOX)) & (m.geom_rgba[:, 3] >= 0.995))
        mirror_geom = int(np.argmax(reflective)) if reflective.any() else -1

        active = np.flatnonzero(m.light_active) if m.nlight else np.zeros(0, np.int64)
        skybox = [t for t in range(m.ntex) if int(m.tex_type[t]) == int(mujoco.mjtTexture.mjTEXTURE_SKYBOX)]
        skybox_slot = int(atlas.first_slot[skybox[0]]) if atlas is not None and skybox else -1
        head = m.vis.headlight
        headlight = np.array([head.ambient, head.diffuse, head.specular], np.float32) * float(head.active != 0)
        f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
        return cls(
            geom_type=m.geom_type.astype(np.int32), geom_matid=matid, emission=emission, specular=specular,
            shininess=shininess, reflectance=reflectance, tex_kind=tex_kind, tex_slot=tex_slot, tex_scale=tex_scale,
            tex_density=tex_density, mirror_geom=mirror_geom,
            light_body=m.light_bodyid[active].astype(np.int32), light_pos=f32(m.light_pos[active]),
            light_dir=f32(m.light_dir[active]), light_type=m.light_type[active].astype(np.int32),
            light_castshadow=m.light_castshadow[active].astype(bool), light_ambient=f32(m.light_ambient[active]),
            light_diffuse=f32(m.light_diffuse[active]), light_specular=f32(m.light_specular[active]),
            light_attenuation=f32(m.light_attenuation[active]), light_cutoff=f32(m.light_cutoff[active]),
            light_exponent=f32(m.light_exponent[active]), skybox_slot=skybox_slot, headlight=headlight)

    @property
    def num_lights(self) -> int:
        return int(self.light_body.size)


def geom_rgb(model: mjx.Model, tables: SceneTables) -> jax.Array:
    """float32 [G, 3]: each geom's colour by MuJoCo's rule (its rgba, or its material's if its rgba is the default)."""
    rgba = model.geom_rgba
    matid = jnp.asarray(tables.geom_matid)
    if model.mat_rgba.shape[0]:
        is_default = jnp.all(rgba == jnp.array([0.5, 0.5, 0.5, 1.0]), axis=-1)
        rgba = jnp.where((is_default & (matid >= 0))[:, None], model.mat_rgba[jnp.maximum(matid, 0)], rgba)
    return rgba[:, :3]


class GeomRows(NamedTuple):
    """The per-geom tables' rows of N ray hits (:func:`geom_rows`).

    Attributes:
        geom_type, tex_kind, tex_slot: int32 [N] (:class:`SceneTables`); pos: float32 [N, 3] geom centres (m);
        xmat: float32 [N, 3, 3] geom frames; size: float32 [N, 3] geom_size; rgb: float32 [N, 3] colour
        (:func:`geom_rgb`); emission, specular, shininess, tex_density: float32 [N]; tex_scale: float32 [N, 3].
    """

    geom_type: jax.Array
    pos: jax.Array
    xmat: jax.Array
    size: jax.Array
    rgb: jax.Array
    emission: jax.Array
    specular: jax.Array
    shininess: jax.Array
    tex_kind: jax.Array
    tex_slot: jax.Array
    tex_scale: jax.Array
    tex_density: jax.Array


def geom_rows(model: mjx.Model, data: mjx.Data, tables: SceneTables, gid: jax.Array) -> GeomRows:
    """Everything shading reads per hit geom, one gather per table.

    (One gather of a packed [G, 29] table instead was measured 15-25% slower per 64 px frame on the CPU: XLA fuses
    each small gather into the computation that reads it, while the packed rows are materialised.)

    Args:
        model, data: the MJX model (colours, sizes: traced, so randomised values show) and state (geom frames).
        tables: the static tables; gid: int32 [N] geom ids, each in [0, G).
    """
    static = lambda x: jnp.asarray(x)[gid]  # noqa: E731
    return GeomRows(geom_type=static(tables.geom_type), pos=data.geom_xpos[gid], xmat=data.geom_xmat[gid],
                    size=model.geom_size[gid], rgb=geom_rgb(model, tables)[gid], emission=static(tables.emission),
                    specular=static(tables.specular), shininess=static(tables.shininess),
                    tex_kind=static(tables.tex_kind), tex_slot=static(tables.tex_slot),
                    tex_scale=static(tables.tex_scale), tex_density=static(tables.tex_density))


def local_normals(geom_type: jax.Array, local: jax.Array, size: jax.Array,
                  types: tuple[int, ...] | None = None) -> jax.Array:
    """Analytic outward unit normals in the geom frame at surface points.

    Args:
        geom_type: int32 [N] mjtGeom; local: float32 [N, 3] hit points in the geom frame (m); size: float32 [N, 3]
            the model's geom_size.
        types: the geom types that can occur (static; default all): the others' formulas are not computed.

    Returns:
        float32 [N, 3]; for meshes (no analytic normal) the zero vector, filled in by the caller.
    """
    formulas = {
        PLANE: lambda: jnp.broadcast_to(jnp.array([0.0, 0.0, 1.0]), local.shape),
        SPHERE: lambda: local,
        CAPSULE: lambda: local - jnp.stack([jnp.zeros_like(local[:, 0]), jnp.zeros_like(local[:, 0]),
                                            jnp.clip(local[:, 2], -size[:, 1], size[:, 1])], axis=-1),
        ELLIPSOID: lambda: local / jnp.maximum(size, 1e-9) ** 2,
        BOX: lambda: jax.nn.one_hot(jnp.argmax(jnp.abs(local) / jnp.maximum(size, 1e-9), axis=-1), 3)
        * jnp.sign(local),
    }
    present = [t for t in formulas if types is None or t in types]
    t = geom_type[:, None]
    normal = jnp.zeros_like(local)
    if present and types is not None and set(types) <= {present[0]}:
        normal = formulas[present[0]]()  # one type only: no selection
    else:
        for geom_type_ in reversed(present):
            normal = jnp.where(t == geom_type_, formulas[geom_type_](), normal)
    return normal / jnp.maximum(jnp.linalg.norm(normal, axis=-1, keepdims=True), 1e-12)


def texture_rgb(tables: SceneTables, atlas: TextureAtlas | None, rows: GeomRows, local: jax.Array,
                footprint: jax.Array) -> jax.Array:
    """float32 [N, 3]: texture colour at hit points (1 where the geom has no texture).

    Args:
        rows: the hit geoms' rows (:func:`geom_rows`); local: float32 [N, 3] hit points in the geom frame (m);
        footprint: float32 [N], the pixel's extent on the surface (m), for mip-level selection.
    """
    if atlas is None or not np.any(tables.tex_kind):
        return jnp.ones_like(local)
    kinds = set(np.unique(tables.tex_kind).tolist())
    kind, scale, density, slot = rows.tex_kind, rows.tex_scale, rows.tex_density, rows.tex_slot
    is_2d = kind == _TEXTURE_2D
    if _TEXTURE_2D in kinds:  # s = 0.5 k x - 0.5, t = -0.5 k y - 0.5 (render_gl3.c), repeated.
        u2 = 0.5 * scale[:, 0] * local[:, 0] - 0.5
        v2 = -0.5 * scale[:, 1] * local[:, 1] - 0.5
        slot2, u, v, texels = slot, u2, v2, footprint
    if _TEXTURE_CUBE in kinds:  # cube: direction lookup of the (scaled) local point.
        face, uc, vc, major = cube_face_uv(local * scale)
        texels_c = footprint * jnp.max(scale, axis=-1) / major
        if _TEXTURE_2D in kinds:
            slot2, u, v = jnp.where(is_2d, slot, slot + face), jnp.where(is_2d, u2, uc), jnp.where(is_2d, v2, vc)
            texels = jnp.where(is_2d, footprint, texels_c)
        else:
            slot2, u, v, texels = slot + face, uc, vc, texels_c
    rgb = atlas.sample(slot2, u, v, jnp.log2(jnp.maximum(texels * density, 1e-6)), is_2d)
    return jnp.where((kind == _NO_TEXTURE)[:, None], 1.0, rgb) if _NO_TEXTURE in kinds else rgb


def sky_rgb(tables: SceneTables, atlas: TextureAtlas | None, direction: jax.Array,
            background: jax.Array) -> jax.Array:
    """float32 [N, 3]: the skybox seen along unit ray directions [N, 3], or ``background`` [3] without one.

    MuJoCo draws the skybox on a large cylinder around the eye with cube-map lookup vector (x, z, -y).
    """
    if atlas is None or tables.skybox_slot < 0:
        return jnp.broadcast_to(background, direction.shape)
    face, u, v, _ = cube_face_uv(jnp.stack([direction[:, 0], direction[:, 2], -direction[:, 1]], axis=-1))
    zero = jnp.zeros_like(u)
    return atlas.sample(tables.skybox_slot + face, u, v, zero, jnp.zeros(u.shape, bool))


def light_frames(tables: SceneTables, data: mjx.Data) -> tuple[jax.Array, jax.Array]:
    """World positions and unit directions float32 [L, 3] of the active lights (attached to their bodies)."""
    body = jnp.asarray(tables.light_body)
    xmat = data.xmat[body]
    pos = data.xpos[body] + jnp.einsum("lij,lj->li", xmat, tables.light_pos)
    direction = jnp.einsum("lij,lj->li", xmat, tables.light_dir)
    return pos, direction / jnp.maximum(jnp.linalg.norm(direction, axis=-1, keepdims=True), 1e-12)


def to_light(tables: SceneTables, light_pos: jax.Array, light_dir: jax.Array,
             point: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Unit vectors from surface points [N, 3] to each light, float32 [L, N, 3], and distances to it [L, N] (m).

    For a directional light the distance is to the plane through its position normal to its direction: like
    MuJoCo's shadow map, which starts at the light, nothing behind the light casts a shadow (brax's humanoid has
    its light at 1.3 m, so the head and raised arms cast none).
    """
    offset = light_pos[:, None, :] - point[None]
    dist = jnp.linalg.norm(offset, axis=-1)
    directional = jnp.asarray(tables.light_type == DIRECTIONAL)[:, None]
    vec = jnp.where(directional[..., None], -light_dir[:, None, :], offset / jnp.maximum(dist, 1e-9)[..., None])
    plane_dist = -jnp.sum(offset * light_dir[:, None, :], axis=-1)
    return vec, jnp.where(directional, plane_dist, dist)


def _phong(normal, view, to_light, ambient, diffuse, specular, rgb, mat_specular, exponent):
    """One light's fixed-function contribution, float32 [N, 3] (``to_light`` [N, 3], light colours [3] or [N, 3])."""
    n_dot_l = jnp.sum(normal * to_light, axis=-1, keepdims=True)
    half = to_light + view
    half = half / jnp.maximum(jnp.linalg.norm(half, axis=-1, keepdims=True), 1e-12)
    n_dot_h = jnp.maximum(jnp.sum(normal * half, axis=-1, keepdims=True), 0.0)
    # n.h ** exponent as exp2(exponent * log2(n.h)): XLA's pow also handles negative bases, which cannot occur here.
    spec = jnp.where(n_dot_l > 0, jnp.exp2(exponent * jnp.log2(jnp.maximum(n_dot_h, 1e-30))), 0.0) * mat_specular
    return ambient * rgb + diffuse * rgb * jnp.maximum(n_dot_l, 0.0) + specular * spec


def shade(tables: SceneTables, rows: GeomRows, normal: jax.Array, ray_dir: jax.Array, rgb: jax.Array,
          tex: jax.Array, to_lights: jax.Array, light_dist: jax.Array, light_dir: jax.Array, visibility: jax.Array,
          head_dir: jax.Array) -> jax.Array:
    """Lit colour of ray hits, float32 [N, 3] (unclipped), by the formula in the module docstring.

    Args:
        rows: the hit geoms' rows (:func:`geom_rows`); normal, ray_dir: float32 [N, 3] unit vectors;
        rgb: float32 [N, 3] geom colour (already scaled for reflections); tex: float32 [N, 3] texture colour.
        to_lights, light_dist: from :func:`to_light`; light_dir: float32 [L, 3] world light directions;
        visibility: float32 [L, N], 1 where the light is not shadowed.
        head_dir: float32 [3], the headlight's direction (the camera's forward axis).
    """
    view = -ray_dir
    mat_specular = rows.specular[:, None]
    exponent = 128.0 * rows.shininess[:, None]
    ambient, diffuse, specular = tables.headlight
    colour = rows.emission[:, None] * rgb
    colour += _phong(normal, view, -head_dir, ambient, diffuse, specular, rgb, mat_specular, exponent)
    for i in range(tables.num_lights):
        spot = jnp.ones_like(light_dist[i])
        if tables.light_type[i] != DIRECTIONAL:
            cos_angle = jnp.sum(-to_lights[i] * light_dir[i], axis=-1)
            spot = jnp.maximum(cos_angle, 0.0) ** tables.light_exponent[i]
            if tables.light_type[i] == _SPOT:
                spot = jnp.where(cos_angle >= np.cos(np.deg2rad(tables.light_cutoff[i])), spot, 0.0)
            a0, a1, a2 = tables.light_attenuation[i]
            spot = spot / jnp.maximum(a0 + a1 * light_dist[i] + a2 * light_dist[i] ** 2, 1e-9)
        weight = (spot * visibility[i])[:, None]
        colour += weight * _phong(normal, view, to_lights[i], tables.light_ambient[i], tables.light_diffuse[i],
                                  tables.light_specular[i], rgb, mat_specular, exponent)
    return tex * colour
