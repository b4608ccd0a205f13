"""A Flax CLIP (Radford et al. 2021; transformers' ``FlaxCLIPModel``) as VLM-RM uses it (Rocamonde et al. 2023).

Prompts are embedded once per run (:meth:`CLIP.embed_text`); rendered frames are embedded at every env step inside
the jitted training step (:meth:`CLIP.embed_images`, preprocessing included), so both return unit vectors, ready
for the goal-baseline reward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from transformers import CLIPTokenizerFast, FlaxCLIPModel

from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.models.loading import load_components
from vlmrm_jax.models.preprocess import preprocess_images

#: The CLIP used when none is named: OpenAI's ViT-B/32 on the Hugging Face hub.
DEFAULT_CLIP = "openai/clip-vit-base-patch32"


def _unit(x: jax.Array) -> jax.Array:
    x = x.astype(jnp.float32)
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


@struct.dataclass
class CLIP:
    """A loaded CLIP: weights as a pytree (``params``), everything else static.

    Being a ``flax.struct`` dataclass, a CLIP can be passed through ``jax.jit`` as an argument (only ``params`` is
    traced) and ``clip.replace(params=new_params)`` gives a fine-tuned copy.

    Attributes:
        params: the Flax weights pytree (float32), on JAX's default device.
        model: transformers' ``FlaxCLIPModel`` (config and module, created without weights); its ``dtype`` is the
            computation dtype.
        tokenizer: the CLIP BPE tokenizer.
        name: the hub id, directory or shipped name it was loaded from.
        image_mean, image_std: per-channel (R, G, B) normalisation, from ``preprocessor_config.json`` when present,
            else CLIP's standard constants.
    """

    params: Any
    model: FlaxCLIPModel = struct.field(pytree_node=False)
    tokenizer: CLIPTokenizerFast = struct.field(pytree_node=False)
    name: str = struct.field(pytree_node=False)
    image_mean: tuple[float, float, float] = struct.field(pytree_node=False)
    image_std: tuple[float, float, float] = struct.field(pytree_node=False)

    @classmethod
    def load(cls, name_or_path: str, *, dtype: jnp.dtype = jnp.float32) -> CLIP:
        """Loads a CLIP by shipped name, local directory or Hugging Face hub id.

        A local directory holds ``config.json`` (model_type ``clip``), weights (``flax_model.msgpack``,
        ``model.safetensors``, or ``pytorch_model.bin``, which needs ``pip install torch``), tokenizer files
        (``tokenizer.json``, or ``vocab.json`` + ``merges.txt``) and optionally ``preprocessor_config.json``. A hub
        id loads from the local Hugging Face cache or the network; with ``HF_HUB_OFFLINE=1`` from the cache only.

        Args:
            name_or_path: e.g. ``"openai/clip-vit-base-patch32"``, ``"path/to/clip"``, or a key of
                :data:`vlmrm_jax.models.registry.OFFLINE_MODELS`.
            dtype: computation dtype, ``jnp.float32`` or ``jnp.bfloat16`` (weights stay float32; embeddings
                are returned as float32 either way).

        Raises:
            ModelNotFoundError: with one line naming what was tried, why it failed (offline, no such directory,
                missing files, not a CLIP config, torch needed) and the fix (``--model PATH``, a shipped model,
                ``HF_HUB_OFFLINE=1`` with a populated cache).
        """
        parts = load_components(name_or_path, dtype)
        return cls(params=parts.params, model=parts.model, tokenizer=parts.tokenizer, name=str(name_or_path),
                   image_mean=parts.image_mean, image_std=parts.image_std)

    @property
    def image_size(self) -> int:
        """Input size S in pixels: frames are resized and cropped to S x S."""
        return int(self.model.config.vision_config.image_size)

    @property
    def embed_dim(self) -> int:
        """D, the size of the joint image-text embedding space."""
        return int(self.model.config.projection_dim)

    @property
    def context_length(self) -> int:
        """Tokens per prompt (start and end tokens included); longer prompts are truncated. CLIP: 77."""
        return int(min(self.model.config.text_config.max_position_embeddings, self.tokenizer.model_max_length))

    def embed_text(self, prompts: Sequence[str]) -> jax.Array:
        """Unit text embeddings of ``prompts`` (the paper's goal and baseline prompts), one row per prompt.

        Each prompt is tokenised (padded to, and truncated at, :attr:`context_length` tokens) and projected by
        CLIP's text tower. Runs eagerly: it is meant to be called once per run.

        Args:
            prompts: N >= 1 non-empty strings.

        Returns:
            float32 [N, D], rows of unit norm.

        Raises:
            VlmrmError: if ``prompts`` is a bare string or empty, or a prompt is empty, whitespace or not a string.
        """
        if isinstance(prompts, str):
            raise VlmrmError(f"prompts={prompts!r} is one string; pass a list of prompts, e.g. [{prompts!r}]")
        prompts = list(prompts)
        if not prompts:
            raise VlmrmError("no prompts given; pass at least one prompt (e.g. --prompt 'a humanoid robot kneeling')")
        for i, prompt in enumerate(prompts):
            if not isinstance(prompt, str) or not prompt.strip():
                raise VlmrmError(f"prompt {i} ({prompt!r}) is empty or not text; pass a sentence describing the "
                                 f"goal, e.g. 'a humanoid robot kneeling'")
        tokens = self.tokenizer(prompts, padding="max_length", max_length=self.context_length, truncation=True,
                                return_tensors="np")
        features = self.model.get_text_features(tokens["input_ids"], np.asarray(tokens["attention_mask"]),
                                                params=self.params)
        return _unit(features)

    def embed_images(self, params: Any, images: jax.Array) -> jax.Array:
        """Unit image embeddings of rendered frames, preprocessing included.

        Pure and jittable, with the weights explicit so that a jitted training step can take or close over them.
        Frames of any size are resized and centre-cropped to :attr:`image_size` as CLIP's processor does
        (:func:`~vlmrm_jax.models.preprocess.preprocess_images`).

        Args:
            params: the weights, usually ``clip.params``.
            images: float [B, H, W, 3], RGB in [0, 1].

        Returns:
            float32 [B, D], rows of unit norm.

        Raises:
            VlmrmError: if ``images`` is not a float [B, H, W, 3] array (checked at trace time).
        """
        pixel_values = preprocess_images(images, self.image_size, self.image_mean, self.image_std)
        return _unit(self.model.get_image_features(pixel_values, params=params))


load_clip = CLIP.load
