"""Tile-culled ray casting: test each screen tile's rays only against the geoms that can reach them, pure JAX.

The image's rays are grouped into square tiles of ``tile x tile`` rays. For every (tile, bounded geom) pair a cheap
conservative test decides whether any ray of the tile can hit the geom:

- camera rays (and mirrored camera rays, whose common origin is the mirror image of the eye): the tile's rays
  lie in the pyramid spanned by its corner rays; a geom can be hit only if it reaches inside each of the pyramid's
  four side planes, i.e. ``n . (centre - eye) >= -support(n)`` (``support``: the geom's extent along the plane's
  normal ``n``; :func:`vlmrm_jax.render.intersect.support`);
- shadow rays (from hit points toward a light): the rays of a tile are segments in the box that bounds them; a geom
  can block one only if its own bounding box overlaps that box.

The surviving pairs are compacted into a list and evaluated a page of ``page`` pairs at a time
(``lax.while_loop``: as many pages as the state needs, so the result never depends on a budget), each page a dense
[page, tile * tile] evaluation of one primitive type's code (:func:`vlmrm_jax.render.intersect.hit_distance`) that
fits in cache. Results go back to the tiles by a scatter-min of packed (distance, geom id) keys, or a scatter-max
of "blocked" flags for shadow rays. Planes are unbounded and always tested densely, meshes by ``mjx.ray``.

Cost: about ``pairs * tile^2`` ray-primitive tests instead of ``rays * geoms``; for brax's humanoid seen by VLM-RM's
camera most tiles show only floor or sky, and a tile overlaps a few of the body's 17 geoms.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from vlmrm_jax.render import intersect
from vlmrm_jax.render.intersect import PLANE, GeomSet


@dataclasses.dataclass(frozen=True)
class Tiling:
    """The sample grid (``height x width``, row-major from the top left) cut into ``tile x tile`` tiles, padded at
    the right and bottom edges to whole tiles. Tile-major layout: [count, tile * tile], tiles row-major."""

    height: int
    width: int
    tile: int

    @property
    def rows(self) -> int:
        return -(-self.height // self.tile)

    @property
    def cols(self) -> int:
        return -(-self.width // self.tile)

    @property
    def count(self) -> int:
        return self.rows * self.cols

    @property
    def per_tile(self) -> int:
        return self.tile * self.tile

    def screen(self, tan_half_fovy: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample points on the image plane at unit distance (x right, y up; OpenGL's symmetric frustum).

        Returns:
            xy: float32 [count, tile^2, 2] in tile-major layout (padding samples continue the grid);
            x_range: float32 [cols, 2], the smallest and largest x of each tile column's samples;
            y_range: float32 [rows, 2], the smallest and largest y of each tile row's samples.
        """
        s, h, w = self.tile, self.height, self.width
        x = ((np.arange(self.cols * s) + 0.5) / w * 2 - 1) * tan_half_fovy * w / h
        y = (1 - (np.arange(self.rows * s) + 0.5) / h * 2) * tan_half_fovy
        xx, yy = np.meshgrid(x, y)
        xy = np.stack([xx, yy], axis=-1).reshape(self.rows, s, self.cols, s, 2).transpose(0, 2, 1, 3, 4)
        x_range = np.stack([x.reshape(self.cols, s).min(1), x.reshape(self.cols, s).max(1)], axis=-1)
        y_range = np.stack([y.reshape(self.rows, s).min(1), y.reshape(self.rows, s).max(1)], axis=-1)
        return (xy.reshape(self.count, self.per_tile, 2).astype(np.float32), x_range.astype(np.float32),
                y_range.astype(np.float32))

    def to_image(self, x: jax.Array, crop: bool = True) -> jax.Array:
        """[count * tile^2, ...] in tile-major layout -> [height, width, ...] (crop=False: with the padding)."""
        s = self.tile
        x = x.reshape((self.rows, self.cols, s, s) + x.shape[1:])
        x = jnp.moveaxis(x, 2, 1).reshape((self.rows * s, self.cols * s) + x.shape[4:])
        return x[:self.height, :self.width] if crop else x

    def from_image(self, x: jax.Array) -> jax.Array:
        """The inverse of ``to_image(x, crop=False)``: [rows * tile, cols * tile, ...] -> [count * tile^2, ...]."""
        s = self.tile
        x = x.reshape((self.rows, s, self.cols, s) + x.shape[2:])
        return jnp.moveaxis(x, 1, 2).reshape((self.count * self.per_tile,) + x.shape[4:])


def _pyramid_planes(x_range: np.ndarray, y_range: np.ndarray, right, up, forward):
    """Inward unit normals (world) of the side planes of each tile column's and row's wedge of camera rays.

    Returns:
        float32 [cols, 2, 3] (left, right planes) and [rows, 2, 3] (bottom, top planes); the planes contain the eye.
    """
    def normal(a, b, c):  # camera-frame (x, y, z) -> world
        n = a[..., None] * right + b[..., None] * up + c[..., None] * forward
        return n / jnp.linalg.norm(n, axis=-1, keepdims=True)

    zero, one = np.zeros_like(x_range[:, 0]), np.ones_like(x_range[:, 0])
    cols = jnp.stack([normal(one, zero, -x_range[:, 0]), normal(-one, zero, x_range[:, 1])], axis=1)
    zero, one = np.zeros_like(y_range[:, 0]), np.ones_like(y_range[:, 0])
    rows = jnp.stack([normal(zero, one, -y_range[:, 0]), normal(zero, -one, y_range[:, 1])], axis=1)
    return cols, rows


def _inside(planes: jax.Array, apex: jax.Array, geom_type: int, pos: jax.Array, rot: jax.Array,
            size: jax.Array) -> jax.Array:
    """bool [n, k]: whether each geom reaches the inner side of both planes of each of n wedges ([n, 2, 3])."""
    reach = intersect.support(geom_type, rot, size, planes)  # [n, 2, k]
    side = jnp.einsum("npc,kc->npk", planes, pos - apex)
    return jnp.all(side >= -reach, axis=1)


def pyramid_candidates(geom_type: int, pos, rot, size, apex, frame, x_range, y_range, mirror=None) -> jax.Array:
    """bool [rows * cols, k]: which geoms of one type can be hit by which tile's rays from ``apex``.

    Args:
        pos, rot, size: float32 [k, 3], [k, 3, 3], [k, 3] the geoms' centres, frames and sizes.
        apex: float32 [3], the rays' common origin; frame: (right, up, forward) of the camera, float32 [3] each.
        x_range, y_range: from :meth:`Tiling.screen`.
        mirror: optional (point, unit normal) of a mirror plane: the rays are the camera's reflected in it (apex
            is then the mirrored eye), so the pyramids are reflected too.
    """
    cols, rows = _pyramid_planes(x_range, y_range, *frame)
    if mirror is not None:
        normal = mirror[1]
        reflect = lambda v: v - 2 * jnp.sum(v * normal, axis=-1, keepdims=True) * normal  # noqa: E731
        cols, rows = reflect(cols), reflect(rows)
    col_ok = _inside(cols, apex, geom_type, pos, rot, size)
    row_ok = _inside(rows, apex, geom_type, pos, rot, size)
    return (row_ok[:, None, :] & col_ok[None, :, :]).reshape(-1, pos.shape[0])


def box_candidates(geom_type: int, pos, rot, size, lower: jax.Array, upper: jax.Array) -> jax.Array:
    """bool [count, k]: which geoms' bounding boxes overlap which tile's box [lower, upper] (float32 [count, 3])."""
    half = intersect.support(geom_type, rot, size, jnp.eye(3, dtype=jnp.float32))  # [3, k]
    return jnp.all((pos.T[None] + half[None] >= lower[:, :, None]) & (pos.T[None] - half[None] <= upper[:, :, None]),
                   axis=1)


def compact(mask: jax.Array, size: int) -> tuple[jax.Array, jax.Array]:
    """Indices of the true entries of ``mask`` (bool [n]) in order, padded with n to ``size`` (>= n), and their count.

    Like ``jnp.nonzero(mask, size=size, fill_value=n)`` but with one prefix sum and one scatter instead of two
    prefix sums and a scatter-add (XLA's CPU prefix sums are blocked reduce-windows, a few percent of a frame each).

    Returns:
        int32 [size] indices, int32 [] count.
    """
    n = mask.shape[0]
    position = jnp.cumsum(mask, dtype=jnp.int32)
    target = jnp.where(mask, position - 1, size)
    order = jnp.full((size,), n, jnp.int32).at[target].set(jnp.arange(n, dtype=jnp.int32), mode="drop",
                                                          unique_indices=True)
    return order, position[-1]


def _paged(candidates: jax.Array, page: int, evaluate, acc: jax.Array, combine: str) -> jax.Array:
    """Evaluates the true entries of ``candidates`` (bool [T, k]) a page at a time and combines them into ``acc``.

    ``evaluate(tile int32 [page], geom int32 [page])`` returns int32 [page, P] per-ray values, combined into
    ``acc`` (int32 [T, P]) by scatter ``combine`` ("min" or "max") at the tiles; padding entries are dropped.
    """
    n_tiles, k = candidates.shape
    total = n_tiles * k
    size = -(-total // page) * page
    order, count = compact(candidates.reshape(-1), size)

    def body(carry):
        start, acc = carry
        entry = jax.lax.dynamic_slice(order, (start,), (page,))
        tile, geom = entry // k, entry % k
        values = evaluate(jnp.minimum(tile, n_tiles - 1), geom)
        target = acc.at[tile]
        acc = (target.min if combine == "min" else target.max)(values, mode="drop")
        return start + page, acc

    return jax.lax.while_loop(lambda carry: carry[0] < count, body, (jnp.int32(0), acc))[1]


def where_needed(mask: jax.Array, fn, fill: jax.Array, page: int) -> jax.Array:
    """``fn`` evaluated only at the true entries of ``mask`` (bool [N]), a page of ``page`` entries at a time.

    Args:
        mask: bool [N]; fn: int32 [page] indices into N -> values [page, ...]; fill: [N, ...] where mask is False.

    Returns:
        [N, ...]: ``fn``'s values where ``mask``, ``fill`` elsewhere. As many pages as there are true entries need
        (``lax.while_loop``), so the result never depends on ``page``.
    """
    n = mask.shape[0]
    page = min(page, n)
    order, count = compact(mask, -(-n // page) * page)

    def body(carry):
        start, out = carry
        index = jax.lax.dynamic_slice(order, (start,), (page,))
        return start + page, out.at[index].set(fn(jnp.minimum(index, n - 1)), mode="drop")

    # The first page outside the loop: most calls need only it, and a loop's iterations cost more than its body
    # under vmap (every iteration selects the whole carry of every batch element).
    first = body((jnp.int32(0), fill))
    if page >= n:
        return first[1]
    return jax.lax.while_loop(lambda carry: carry[0] < count, body, first)[1]


@dataclasses.dataclass(frozen=True)
class TileCaster:
    """Casts tile-major ray bundles against a :class:`GeomSet` with tile culling (static configuration).

    Attributes:
        geoms: what to test; page: (tile, geom) pairs evaluated per loop step.
    """

    geoms: GeomSet
    page: int = 32

    def nearest(self, model, data, apex: jax.Array, directions: jax.Array, t_min: jax.Array, frame, x_range,
                y_range, mirror=None, active: jax.Array | None = None) -> jax.Array:
        """Packed nearest-hit keys int32 [T, P] (:func:`intersect.unpack`) of rays from a common origin.

        Args:
            model, data: the MJX model and state.
            apex: float32 [3], the rays' origin (the eye, or the mirrored eye for reflections).
            directions: float32 [T, P, 3] unit directions, tile-major.
            t_min: float32 [T, P]: hits nearer than this (m) do not count (inf: the ray is not cast).
            frame, x_range, y_range, mirror: the camera frame and tile bounds, as in :func:`pyramid_candidates`.
            active: optional bool [T], tiles with at least one ray cast (others are skipped).
        """
        bits = self.geoms.id_bits
        alpha_ok = intersect.visible_mask(model)
        size_all = jnp.asarray(model.geom_size)
        o = [apex[i] for i in range(3)]
        keys = jnp.full(t_min.shape, intersect.no_hit(bits), jnp.int32)
        flat_d = intersect.components(directions.reshape(-1, 3))
        for ids in ([self.geoms.planes] if self.geoms.planes.size else []):
            keys = jnp.minimum(keys, intersect.dense_keys(model, data, PLANE, ids, o, flat_d, t_min.reshape(-1), bits,
                                                          alpha_ok).reshape(t_min.shape))
        for geom_type, ids in self.geoms.bounded:
            pos, rot, size = data.geom_xpos[ids], data.geom_xmat[ids], size_all[ids]
            cand = pyramid_candidates(geom_type, pos, rot, size, apex, frame, x_range, y_range, mirror)
            cand &= alpha_ok[ids][None]
            if active is not None:
                cand &= active[:, None]
            gid = jnp.asarray(ids, jnp.int32)

            def evaluate(tile, geom, geom_type=geom_type, pos=pos, rot=rot, size=size, gid=gid):
                d = intersect.components(directions[tile])  # [page, P]
                t = intersect.hit_distance(geom_type, intersect.components(pos[geom], (1,)),
                                           [intersect.components(rot[geom][:, :, j], (1,)) for j in range(3)],
                                           intersect.components(size[geom], (1,)), o, d, t_min[tile])
                return intersect.pack(t, gid[geom][:, None], bits)

            keys = _paged(cand, self.page, evaluate, keys, "min")
        if self.geoms.meshes.size:
            origin = jnp.broadcast_to(apex, directions.shape).reshape(-1, 3)
            start = jnp.where(jnp.isfinite(t_min), t_min, 0.0).reshape(-1)
            mesh = intersect.mesh_keys(model, data, self.geoms.meshes, origin, directions.reshape(-1, 3), start, bits)
            keys = jnp.minimum(keys, jnp.where(jnp.isfinite(t_min), mesh.reshape(t_min.shape), keys))
        return keys

    def blocked(self, model, data, origins: jax.Array, direction: jax.Array, t_max: jax.Array) -> jax.Array:
        """bool [T, P]: whether anything lies on each segment from ``origins`` along the ray, short of ``t_max``.

        Args:
            origins: float32 [T, P, 3] segment starts (m), tile-major.
            direction: float32 [3] shared unit direction (directional light) or [T, P, 3] per ray (point light).
            t_max: float32 [T, P] segment lengths (m); <= 0: nothing to test for that ray.
        """
        bits = self.geoms.id_bits
        alpha_ok = intersect.visible_mask(model)
        size_all = jnp.asarray(model.geom_size)
        length = jnp.maximum(t_max, 0.0)
        shared = direction.ndim == 1
        ends = origins + length[..., None] * direction
        live = (t_max > 0)[..., None]
        lower = jnp.min(jnp.where(live, jnp.minimum(origins, ends), jnp.inf), axis=1)
        upper = jnp.max(jnp.where(live, jnp.maximum(origins, ends), -jnp.inf), axis=1)
        flat_o = intersect.components(origins.reshape(-1, 3))
        flat_d = [direction[i] for i in range(3)] if shared else intersect.components(direction.reshape(-1, 3))
        hit = jnp.zeros(t_max.shape, jnp.int32)
        if self.geoms.planes.size:
            key = intersect.dense_keys(model, data, PLANE, self.geoms.planes, flat_o, flat_d, 0.0, bits, alpha_ok)
            dist, _ = intersect.unpack(key, bits)
            hit |= ((dist >= 0) & (dist < t_max.reshape(-1))).reshape(t_max.shape).astype(jnp.int32)
        for geom_type, ids in self.geoms.bounded:
            pos, rot, size = data.geom_xpos[ids], data.geom_xmat[ids], size_all[ids]
            cand = box_candidates(geom_type, pos, rot, size, lower, upper) & alpha_ok[ids][None]

            def evaluate(tile, geom, geom_type=geom_type, pos=pos, rot=rot, size=size):
                o = intersect.components(origins[tile])
                d = [direction[i] for i in range(3)] if shared else intersect.components(direction[tile])
                t = intersect.hit_distance(geom_type, intersect.components(pos[geom], (1,)),
                                           [intersect.components(rot[geom][:, :, j], (1,)) for j in range(3)],
                                           intersect.components(size[geom], (1,)), o, d, 0.0)
                return (t < t_max[tile]).astype(jnp.int32)

            hit = _paged(cand, self.page, evaluate, hit, "max")
        if self.geoms.meshes.size:
            o = origins.reshape(-1, 3)
            d = jnp.broadcast_to(direction, origins.shape).reshape(-1, 3)
            key = intersect.mesh_keys(model, data, self.geoms.meshes, o, d, jnp.zeros(o.shape[0]), bits)
            dist, _ = intersect.unpack(key, bits)
            hit |= ((dist >= 0) & (dist < t_max.reshape(-1))).reshape(t_max.shape).astype(jnp.int32)
        return hit > 0
