"""The model's textures as mip-mapped JAX arrays, sampled like OpenGL (trilinear, repeat or clamp-to-edge).

MuJoCo stores every texture in ``mj_model.tex_data`` (uint8, row-major); cube and skybox textures as six square faces
stacked vertically in OpenGL's order +X, -X, +Y, -Y, +Z, -Z. Here every face of every texture gets a mip pyramid
(2x2 box filter down to 1x1) and all levels go into one flat texel array, so sampling is a few gathers per pixel.
Level-of-detail selection from the pixel footprint is what makes a distant checker floor fade to grey as in
MuJoCo's renderer instead of aliasing.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

_CUBE_TYPES = (int(mujoco.mjtTexture.mjTEXTURE_CUBE), int(mujoco.mjtTexture.mjTEXTURE_SKYBOX))


def _faces(mj_model: mujoco.MjModel, tex_id: int) -> list[np.ndarray]:
    """The faces of one texture as float32 [h, w, 3] in [0, 1]: one face for 2D textures, six for cube/skybox."""
    w, h, c = (int(mj_model.tex_width[tex_id]), int(mj_model.tex_height[tex_id]),
               int(mj_model.tex_nchannel[tex_id]))
    adr = int(mj_model.tex_adr[tex_id])
    image = mj_model.tex_data[adr:adr + w * h * c].reshape(h, w, c).astype(np.float32) / 255.0
    image = np.repeat(image, 3, axis=2) if c == 1 else image[..., :3]
    if int(mj_model.tex_type[tex_id]) in _CUBE_TYPES:
        return list(np.split(image, 6, axis=0)) if h % 6 == 0 else [image] * 6
    return [image]


def _mip_pyramid(image: np.ndarray) -> list[np.ndarray]:
    """Levels 0..n of an [h, w, 3] image, each a 2x2 box-filtered half of the previous (odd edges dropped)."""
    levels = [image]
    while image.shape[0] > 1 or image.shape[1] > 1:
        h, w = max(image.shape[0] // 2, 1), max(image.shape[1] // 2, 1)
        fy, fx = image.shape[0] // h, image.shape[1] // w
        image = image[:h * fy, :w * fx].reshape(h, fy, w, fx, 3).mean(axis=(1, 3))
        levels.append(image)
    return levels


@dataclasses.dataclass(frozen=True)
class TextureAtlas:
    """All faces of all textures of a model, mip-mapped, in one flat array.

    A *slot* is one face of one texture (2D textures have one slot, cube/skybox textures six consecutive ones).
    Every level is stored with a one-texel border (wrapped around for 2D textures, which repeat; the edge repeated
    for cube faces, which clamp), so a bilinear lookup reads its four texels without wrap-around arithmetic.

    Attributes:
        texels: float32 [N, 3], every bordered level of every slot, row-major.
        level_adr, level_width, level_height: int32 [num_slots, num_levels]: where each bordered level starts in
            ``texels`` and its size without the border; levels past a slot's last one repeat the last (1x1) level.
        first_slot: int32 [ntex], the slot of each texture's first face.
    """

    texels: np.ndarray
    level_adr: np.ndarray
    level_width: np.ndarray
    level_height: np.ndarray
    first_slot: np.ndarray

    @classmethod
    def from_model(cls, mj_model: mujoco.MjModel) -> "TextureAtlas":
        """Builds the atlas from ``mj_model.tex_*`` (NumPy, at renderer construction)."""
        pyramids, first_slot, wrap = [], [], []
        for tex_id in range(mj_model.ntex):
            first_slot.append(len(pyramids))
            faces = _faces(mj_model, tex_id)
            pyramids.extend(_mip_pyramid(face) for face in faces)
            wrap.extend([int(mj_model.tex_type[tex_id]) not in _CUBE_TYPES] * len(faces))
        num_levels = max((len(p) for p in pyramids), default=1)
        shape = (max(len(pyramids), 1), num_levels)
        level_adr, level_width, level_height = (np.zeros(shape, np.int32) for _ in range(3))
        texels, adr = [np.zeros((1, 3), np.float32)], 1
        for slot, pyramid in enumerate(pyramids):
            for level in range(num_levels):
                image = pyramid[min(level, len(pyramid) - 1)]
                if level < len(pyramid):
                    bordered = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode="wrap" if wrap[slot] else "edge")
                    texels.append(bordered.reshape(-1, 3))
                    level_adr[slot, level] = adr
                    adr += bordered.shape[0] * bordered.shape[1]
                else:
                    level_adr[slot, level] = level_adr[slot, level - 1]
                level_height[slot, level], level_width[slot, level] = image.shape[:2]
        return cls(np.concatenate(texels), level_adr, level_width, level_height, np.asarray(first_slot, np.int32))

    @property
    def num_levels(self) -> int:
        return self.level_adr.shape[1]

    def _bilinear(self, slot: jax.Array, level: jax.Array, u: jax.Array, v: jax.Array) -> jax.Array:
        """Bilinear lookup in one level; u, v already wrapped into [0, 1) or clamped to [0, 1]."""
        flat = slot * self.num_levels + level
        info = jnp.asarray(np.stack([self.level_adr, self.level_width, self.level_height], -1).reshape(-1, 3))[flat]
        adr, w, h = info[..., 0], info[..., 1], info[..., 2]
        x, y = u * w - 0.5, v * h - 0.5
        x0, y0 = jnp.floor(x), jnp.floor(y)
        fx, fy = (x - x0)[..., None], (y - y0)[..., None]
        pitch = w + 2  # the bordered row
        corner = adr + (y0.astype(jnp.int32) + 1) * pitch + x0.astype(jnp.int32) + 1
        texels = jnp.asarray(self.texels)
        top = texels[corner] * (1 - fx) + texels[corner + 1] * fx
        bottom = texels[corner + pitch] * (1 - fx) + texels[corner + pitch + 1] * fx
        return top * (1 - fy) + bottom * fy

    def sample(self, slot: jax.Array, u: jax.Array, v: jax.Array, lod: jax.Array, repeat: jax.Array) -> jax.Array:
        """Trilinear texture lookup (OpenGL's LINEAR_MIPMAP_LINEAR).

        Args:
            slot: int32 [N], face slot per sample.
            u, v: float32 [N], texture coordinates (1 = one face width/height; v = 0 is the first stored row).
            lod: float32 [N], level of detail: log2 of the pixel footprint in level-0 texels.
            repeat: bool [N], wrap coordinates (2D textures) instead of clamping to the edge (cube faces).

        Returns:
            float32 [N, 3] colours in [0, 1].
        """
        u = jnp.where(repeat, u - jnp.floor(u), jnp.clip(u, 0.0, 1.0))
        v = jnp.where(repeat, v - jnp.floor(v), jnp.clip(v, 0.0, 1.0))
        lod = jnp.clip(lod, 0.0, self.num_levels - 1)
        level0 = jnp.floor(lod).astype(jnp.int32)
        level1 = jnp.minimum(level0 + 1, self.num_levels - 1)
        frac = (lod - level0)[..., None]
        return self._bilinear(slot, level0, u, v) * (1 - frac) + self._bilinear(slot, level1, u, v) * frac


def cube_face_uv(vec: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """OpenGL cube-map face selection (spec table 3.19) for direction vectors.

    Args:
        vec: float32 [N, 3] lookup directions (need not be unit).

    Returns:
        face: int32 [N] in 0..5 (+X, -X, +Y, -Y, +Z, -Z); u, v: float32 [N] in [0, 1] on that face;
        major: float32 [N], the absolute value of the major-axis component.
    """
    x, y, z = vec[..., 0], vec[..., 1], vec[..., 2]
    ax, ay, az = jnp.abs(x), jnp.abs(y), jnp.abs(z)
    is_x = (ax >= ay) & (ax >= az)
    is_y = ~is_x & (ay >= az)
    face = jnp.where(is_x, jnp.where(x >= 0, 0, 1), jnp.where(is_y, jnp.where(y >= 0, 2, 3), jnp.where(z >= 0, 4, 5)))
    sc = jnp.where(is_x, -jnp.sign(x) * z, jnp.where(is_y, x, jnp.sign(z) * x))
    tc = jnp.where(is_x, -y, jnp.where(is_y, jnp.sign(y) * z, -y))
    major = jnp.maximum(jnp.where(is_x, ax, jnp.where(is_y, ay, az)), 1e-12)
    return face.astype(jnp.int32), 0.5 * (sc / major + 1), 0.5 * (tc / major + 1), major
