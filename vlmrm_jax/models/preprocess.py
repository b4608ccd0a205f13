"""CLIP's image preprocessing in JAX, so that it fuses with the renderer inside one jitted program.

It reproduces transformers' ``CLIPImageProcessor`` (and OpenAI CLIP's ``Resize(S, BICUBIC) + CenterCrop(S) +
Normalize``): resize the shortest side to S with an antialiased bicubic filter, crop the central S x S square,
normalise each channel with the model's mean and standard deviation. The resize and the crop are one
:func:`jax.image.scale_and_translate` that evaluates only the output pixels that survive the crop.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from vlmrm_jax.errors import VlmrmError

#: CLIP's per-channel (R, G, B) normalisation (Radford et al. 2021), for processors that do not give their own.
CLIP_MEAN: tuple[float, float, float] = tuple(OPENAI_CLIP_MEAN)
CLIP_STD: tuple[float, float, float] = tuple(OPENAI_CLIP_STD)


def resized_shape(height: int, width: int, image_size: int) -> tuple[int, int]:
    """(height, width) after scaling the shortest side to ``image_size``, rounded as transformers' processor does."""
    if height <= width:
        return image_size, int(image_size * width / height)
    return int(image_size * height / width), image_size


def preprocess_images(images: jax.Array, image_size: int, mean: Sequence[float] = CLIP_MEAN,
                      std: Sequence[float] = CLIP_STD) -> jax.Array:
    """Turns rendered frames into CLIP's ``pixel_values``.

    Resizes the shortest side to ``image_size`` (bicubic, antialiased when downscaling; values clipped to [0, 1]
    afterwards, as the uint8 round trip of PIL does), takes the central ``image_size`` x ``image_size`` crop (top-left
    corner at ``((h - S) // 2, (w - S) // 2)`` of the resized image, as ``CLIPImageProcessor``), and normalises with
    ``(x - mean) / std``. An image that is already S x S is only normalised. Pure and jittable; the shapes are static.

    Args:
        images: float [B, H, W, 3], RGB in [0, 1] (any H, W >= 1).
        image_size: S, the model's input size in pixels.
        mean, std: per-channel (R, G, B) normalisation constants of the model (CLIP's by default).

    Returns:
        float32 [B, 3, S, S], the channels-first layout of transformers' ``pixel_values``.

    Raises:
        VlmrmError: if ``images`` is not [B, H, W, 3] or is an integer array.
    """
    images = jnp.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise VlmrmError(f"images of shape {images.shape} are not [B, H, W, 3] RGB frames; pass a batch of "
                         f"RGB images (add a batch axis with images[None] for a single frame)")
    if not jnp.issubdtype(images.dtype, jnp.floating):
        raise VlmrmError(f"images of dtype {images.dtype} are not float; pass float RGB in [0, 1] "
                         f"(e.g. images.astype(jnp.float32) / 255 for uint8 frames)")
    batch, height, width, _ = images.shape
    images = images.astype(jnp.float32)
    if (height, width) != (image_size, image_size):
        new_height, new_width = resized_shape(height, width, image_size)
        top, left = (new_height - image_size) // 2, (new_width - image_size) // 2
        images = jax.image.scale_and_translate(
            images, (batch, image_size, image_size, 3), spatial_dims=(1, 2),
            scale=jnp.array([new_height / height, new_width / width], jnp.float32),
            translation=jnp.array([-top, -left], jnp.float32), method="bicubic", antialias=True)
        images = jnp.clip(images, 0.0, 1.0)
    images = (images - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)
    return images.transpose(0, 3, 1, 2)
