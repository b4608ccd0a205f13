"""Ray-primitive intersection specialised to the geom types of a scene, vectorised over [geoms, rays], pure JAX.

``mujoco.mjx.ray`` casts one ray at a time (vmapped over pixels) against every geom with generic per-type code. Here
the code for one primitive type is one broadcast expression over [geoms (or ray-geom pairs), rays] in the world
frame; what depends only on the geom and a ray origin (or direction) shared by the bundle is computed once per geom,
by broadcasting: pass a shared origin as scalars. Alongside: each primitive's support function (its extent along a
direction, for culling, :mod:`vlmrm_jax.render.tiles`) and a packing of (distance, geom id) into one int32 that makes
"nearest hit and its geom" a plain integer minimum.

The hit rules are ``mjx.ray``'s: planes are hit from their front side only and clipped to their size when it is
positive, quadrics and boxes at the nearest root >= the ray's start (a ray starting inside a geom hits its far
side), geoms that are transparent without a material are skipped. Cylinders, height fields and SDFs are invisible
(as in mjx.ray); meshes are left to mjx.ray by the caller.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from vlmrm_jax.errors import VlmrmError

_G = mujoco.mjtGeom
PLANE, SPHERE, CAPSULE, ELLIPSOID, CYLINDER, BOX, MESH = (int(t) for t in (
    _G.mjGEOM_PLANE, _G.mjGEOM_SPHERE, _G.mjGEOM_CAPSULE, _G.mjGEOM_ELLIPSOID, _G.mjGEOM_CYLINDER, _G.mjGEOM_BOX,
    _G.mjGEOM_MESH))
#: Bounded primitive types with specialised code (planes are unbounded and handled densely).
BOUNDED = (SPHERE, CAPSULE, ELLIPSOID, BOX)
_MINVAL = mujoco.mjMINVAL

Vec = list  # three arrays (x, y, z components) that broadcast together


@dataclasses.dataclass(frozen=True)
class GeomSet:
    """The geoms rays are cast against, by type (static, read from ``mj_model`` once).

    Attributes:
        planes, meshes: int64 [k] geom ids.
        bounded: ((mjtGeom type, int64 [k] geom ids), ...) for the types in :data:`BOUNDED` present, in that order.
        id_bits: bits that hold a geom id in :func:`pack` (ids and the "no hit" code 2**id_bits - 1).
    """

    planes: np.ndarray
    meshes: np.ndarray
    bounded: tuple[tuple[int, np.ndarray], ...]
    id_bits: int

    @classmethod
    def from_model(cls, mj_model: mujoco.MjModel, visible: np.ndarray) -> "GeomSet":
        """The geoms that ``mjx.ray`` would test among ``visible`` (bool [ngeom], e.g. the drawn geom groups).

        Raises:
            VlmrmError: if the model has over 2**12 - 1 geoms (the packed distance would lose too many bits).
        """
        types = np.asarray(mj_model.geom_type)
        pick = lambda t: np.flatnonzero(np.asarray(visible, bool) & (types == t))  # noqa: E731
        id_bits = max(1, int(np.ceil(np.log2(mj_model.ngeom + 1))))
        if id_bits > 12:
            raise VlmrmError(f"ngeom={mj_model.ngeom} is too many for RenderConfig(backend='tiles') (at most 4095); "
                             "use backend='mjx_ray'.")
        bounded = tuple((t, pick(t)) for t in BOUNDED if pick(t).size)
        return cls(pick(PLANE), pick(MESH), bounded, id_bits)


def dot(a: Vec, b: Vec):
    """Dot product of two component lists (broadcasting)."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def components(v: jax.Array, lead: tuple[int, ...] = ()) -> Vec:
    """float32 [..., 3] -> three arrays [..., 1 x len(lead)] (components; ``lead`` adds trailing broadcast axes)."""
    return [v[..., i].reshape(v.shape[:-1] + (1,) * len(lead)) for i in range(3)]


def _roots(b, c, a=None):
    """Both roots of a t^2 + 2 b t + c = 0 (a = 1 if None) and whether they are real (mjx.ray's test)."""
    det = b * b - (c if a is None else a * c)
    sq = jnp.sqrt(jnp.maximum(det, 0.0))
    if a is None:
        return -b - sq, -b + sq, det >= _MINVAL
    inv = 1.0 / jnp.where(a == 0, _MINVAL, a)
    return (-b - sq) * inv, (-b + sq) * inv, det >= _MINVAL


def _nearest(near, far, ok_near, ok_far, t_min):
    """The smaller of two candidate distances that are acceptable and >= t_min; inf if neither."""
    near = jnp.where(ok_near & (near >= t_min), near, jnp.inf)
    return jnp.minimum(near, jnp.where(ok_far & (far >= t_min), far, jnp.inf))


def hit_distance(geom_type: int, pos: Vec, rot: list[Vec], size: Vec, o: Vec, d: Vec, t_min):
    """Distance along rays to the nearest hit with primitives of one type (inf where none), broadcasting.

    Args:
        geom_type: one of :data:`BOUNDED` or PLANE.
        pos: geom centres (m), rot: rot[j] = the geom frame's j-th axis in world coordinates (xmat[:, j]), size:
            the model's geom_size; each a list of 3 arrays broadcasting against the rays (e.g. [k, 1]).
        o, d: ray origins (m) and unit directions, lists of 3 arrays (e.g. scalars for a shared origin, [k, N]).
        t_min: hits nearer than this (m) do not count.

    Returns:
        float32 distances, the broadcast shape of the inputs.
    """
    oc = [o[i] - pos[i] for i in range(3)]
    if geom_type == SPHERE:
        near, far, real = _roots(dot(d, oc), dot(oc, oc) - size[0] * size[0])
        return _nearest(near, far, real, real, t_min)
    if geom_type == CAPSULE:
        radius, half, axis = size[0], size[1], rot[2]
        pz, vz = dot(axis, oc), dot(axis, d)
        doc, ococ = dot(d, oc), dot(oc, oc)
        r2 = radius * radius
        # the round side: |(oc + t d) - ((oc + t d) . axis) axis|^2 = r^2, between the flat ends
        near, far, real = _roots(doc - vz * pz, ococ - pz * pz - r2, 1.0 - vz * vz)
        on_side = lambda t: real & (jnp.abs(pz + t * vz) <= half)  # noqa: E731
        t = _nearest(near, far, on_side(near), on_side(far), t_min)
        for sign in (1.0, -1.0):  # the caps: spheres at centre +- half * axis, their outer halves only
            near, far, real = _roots(doc - sign * half * vz, ococ - 2 * sign * half * pz + half * half - r2)
            on_cap = lambda s: real & (sign * (pz + s * vz) >= half)  # noqa: E731
            t = jnp.minimum(t, _nearest(near, far, on_cap(near), on_cap(far), t_min))
        return t
    lo = [dot(rot[i], oc) for i in range(3)]  # the ray in the geom frame
    ld = [dot(rot[i], d) for i in range(3)]
    if geom_type == ELLIPSOID:
        inv = [1.0 / jnp.maximum(size[i], _MINVAL) for i in range(3)]
        so, sd = [lo[i] * inv[i] for i in range(3)], [ld[i] * inv[i] for i in range(3)]
        near, far, real = _roots(dot(sd, so), dot(so, so) - 1.0, dot(sd, sd))
        return _nearest(near, far, real, real, t_min)
    if geom_type == BOX:  # slabs
        enter, leave = -jnp.inf, jnp.inf
        for i in range(3):
            inv = 1.0 / jnp.where(ld[i] == 0, _MINVAL, ld[i])
            t0, t1 = (-size[i] - lo[i]) * inv, (size[i] - lo[i]) * inv
            enter, leave = jnp.maximum(enter, jnp.minimum(t0, t1)), jnp.minimum(leave, jnp.maximum(t0, t1))
        ok = enter <= leave
        return _nearest(enter, leave, ok, ok, t_min)
    if geom_type == PLANE:
        t = -lo[2] / jnp.where(ld[2] == 0, _MINVAL, ld[2])
        ok = (ld[2] <= -_MINVAL) & (t >= t_min)
        for i in range(2):
            ok &= (size[i] <= 0) | (jnp.abs(lo[i] + t * ld[i]) <= size[i])
        return jnp.where(ok, t, jnp.inf)
    raise ValueError(f"geom type {geom_type} has no specialised ray code")


def support(geom_type: int, rot: jax.Array, size: jax.Array, normal: jax.Array) -> jax.Array:
    """Half-extent of bounded geoms along unit directions: max over the geom of (x - centre) . normal.

    Args:
        geom_type: one of :data:`BOUNDED`; rot: float32 [k, 3, 3] geom_xmat; size: float32 [k, 3] geom_size;
        normal: float32 [..., 3] unit vectors (world).

    Returns:
        float32 [..., k] (m).
    """
    proj = jnp.einsum("...c,kcj->...kj", normal, rot)  # normal in each geom's frame
    if geom_type == SPHERE:
        return jnp.broadcast_to(size[:, 0], proj.shape[:-1])
    if geom_type == CAPSULE:
        return size[:, 0] + size[:, 1] * jnp.abs(proj[..., 2])
    if geom_type == ELLIPSOID:
        return jnp.sqrt(jnp.sum((size * proj) ** 2, axis=-1))
    if geom_type == BOX:
        return jnp.sum(size * jnp.abs(proj), axis=-1)
    raise ValueError(f"geom type {geom_type} is not bounded")


def visible_mask(model: mjx.Model) -> jax.Array:
    """bool [ngeom]: mjx.ray's dynamic filter (a geom is skipped when transparent and without an opaque material)."""
    matid = jnp.asarray(model.geom_matid)
    ok = (matid != -1) | (model.geom_rgba[:, 3] != 0)
    if model.mat_rgba.shape[0]:
        ok &= (matid == -1) | (model.mat_rgba[jnp.maximum(matid, 0), 3] != 0)
    return ok


def pack(dist: jax.Array, gid, id_bits: int) -> jax.Array:
    """int32 keys ordering hits by distance, then geom id: the float's bits with its lowest ``id_bits`` replaced by
    the id (distances >= 0 order like their bit patterns). inf packs as "no hit". Loses ``id_bits`` mantissa bits
    (relative error < 2**(id_bits - 23), e.g. 4e-6 for 18 geoms)."""
    low = (1 << id_bits) - 1
    bits = jax.lax.bitcast_convert_type(jnp.where(dist > 0, dist, 0.0), jnp.int32)
    return jnp.where(jnp.isfinite(dist), (bits & ~low) | gid, _NO_HIT_BITS | low)


_NO_HIT_BITS = 0x7F800000  # +inf


def no_hit(id_bits: int) -> int:
    """The key of a ray that hits nothing."""
    return _NO_HIT_BITS | ((1 << id_bits) - 1)


def unpack(key: jax.Array, id_bits: int) -> tuple[jax.Array, jax.Array]:
    """Keys -> (distance float32, -1 where no hit; geom id int32, -1 where no hit)."""
    low = (1 << id_bits) - 1
    hit = key != no_hit(id_bits)
    dist = jax.lax.bitcast_convert_type(key & ~low, jnp.float32)
    return jnp.where(hit, dist, -1.0), jnp.where(hit, key & low, -1).astype(jnp.int32)


def geom_frames(data: mjx.Data, ids: np.ndarray, size: jax.Array, lead: int = 1):
    """(pos, rot, size) of geoms ``ids`` as component lists with ``lead`` trailing broadcast axes ([k, 1, ...])."""
    shape = (len(ids),) + (1,) * lead
    pos = [data.geom_xpos[ids, i].reshape(shape) for i in range(3)]
    rot = [[data.geom_xmat[ids, i, j].reshape(shape) for i in range(3)] for j in range(3)]
    return pos, rot, [size[ids, i].reshape(shape) for i in range(3)]


def dense_keys(model: mjx.Model, data: mjx.Data, geom_type: int, ids: np.ndarray, o: Vec, d: Vec, t_min,
               id_bits: int, alpha_ok: jax.Array) -> jax.Array:
    """Packed nearest-hit keys int32 [N] of rays (components broadcasting to [N]) against every geom ``ids`` of one
    type (for planes, which are unbounded, and small sets)."""
    pos, rot, size = geom_frames(data, ids, jnp.asarray(model.geom_size))
    expand = lambda v: [x[None] if jnp.ndim(x) else x for x in v]  # noqa: E731
    t = hit_distance(geom_type, pos, rot, size, expand(o), expand(d), t_min)
    t = jnp.where(alpha_ok[ids][:, None], t, jnp.inf)
    return jnp.min(pack(t, jnp.asarray(ids, jnp.int32)[:, None], id_bits), axis=0)


def mesh_keys(model: mjx.Model, data: mjx.Data, meshes: np.ndarray, origin: jax.Array, direction: jax.Array,
              t_min: jax.Array, id_bits: int) -> jax.Array:
    """Packed nearest-hit keys int32 [N] against the mesh geoms, by ``mjx.ray`` (every other geom hidden from it).

    Args:
        origin, direction: float32 [N, 3]; t_min: float32 [N] (the ray starts there: mjx.ray has no minimum).
    """
    group = np.full(model.ngeom, mujoco.mjNGROUP - 1, np.asarray(model.geom_group).dtype)
    group[meshes] = 0
    mesh_model = model.replace(geom_group=group)
    only_group_0 = (1,) + (0,) * (mujoco.mjNGROUP - 1)
    start = origin + t_min[:, None] * direction
    dist, gid = jax.vmap(lambda p, v: mjx.ray(mesh_model, data, p, v, geomgroup=only_group_0))(start, direction)
    return pack(jnp.where(gid >= 0, dist + t_min, jnp.inf), jnp.maximum(gid, 0), id_bits)
