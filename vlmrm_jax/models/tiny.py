"""Tiny randomly initialised CLIPs in the Hugging Face format, for tests and offline runs without a real checkpoint.

A tiny CLIP has the architecture of a real one (ViT image tower, causal text transformer, projections), a real
byte-level BPE tokenizer (:func:`~vlmrm_jax.models.tokenizer.build_clip_tokenizer`) and random weights, so it
exercises every code path of loading, preprocessing and embedding; its similarities mean nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import jax
from flax.traverse_util import flatten_dict, unflatten_dict
from transformers import CLIPConfig, CLIPImageProcessor, FlaxCLIPModel

from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.models.tokenizer import build_clip_tokenizer

#: Default tokenizer corpus: the prompts of VLM-RM (Rocamonde et al. 2023) and of Di Palo et al. (2023).
DEFAULT_VOCAB_TEXTS = (
    "a humanoid robot",
    "a humanoid robot kneeling",
    "a humanoid robot seated down, meditating in the lotus position",
    "a humanoid robot standing up",
    "a humanoid robot standing up, with both arms raised",
    "a humanoid robot practicing gymnastics, doing the side splits",
    "a humanoid robot standing up with hands on hips",
    "a humanoid robot standing up, with its arms crossed",
    "a humanoid robot standing up on one leg",
    "pole vertically upright on top of the cart",
    "pole and cart",
    "a car at the peak of the mountain, next to the yellow flag",
    "a car in the mountain",
    "The robot is grasping the red object",
    "The red object is on top of the blue object",
    "The green object is on top of the red object",
)


def _fan_in_kernels(params, key: jax.Array):
    """Re-draws every dense and convolution kernel with LeCun-normal (fan-in) scaling.

    transformers' Flax CLIP draws kernels from N(0, 0.01) whatever their size, meant to be overwritten by trained
    weights; at width 32 the class token then barely attends to the patches and every frame gets nearly the same
    image embedding (mean pairwise cosine distance ~1e-6). Fan-in scaling makes embeddings depend on the content.
    """
    init = jax.nn.initializers.lecun_normal()
    flat = flatten_dict(params)
    keys = jax.random.split(key, len(flat))
    return unflatten_dict({path: init(k, value.shape, value.dtype) if path[-1] == "kernel" else value
                           for k, (path, value) in zip(keys, sorted(flat.items()))})


def create_tiny_clip(path: str | Path, *, image_size: int = 32, vocab_texts: Sequence[str] | None = None,
                     seed: int = 0, patch_size: int = 8, hidden_size: int = 32, num_layers: int = 2,
                     num_heads: int = 2, projection_dim: int = 16, vocab_size: int = 1000,
                     context_length: int = 77) -> Path:
    """Writes a randomly initialised CLIP that :meth:`vlmrm_jax.models.CLIP.load` loads like a real one.

    Files: ``config.json`` and ``flax_model.msgpack`` (``FlaxCLIPModel.save_pretrained``), the tokenizer files,
    and ``preprocessor_config.json`` (CLIP's mean/std, shortest side and crop of ``image_size``). Both towers use
    ``hidden_size``, ``num_layers``, ``num_heads`` and an MLP of 4 x ``hidden_size``. Kernels are LeCun-normal, so
    that image embeddings differ between frames (see :func:`_fan_in_kernels`).

    Args:
        path: output directory (created if missing).
        image_size: input size S in pixels; a multiple of ``patch_size``.
        vocab_texts: tokenizer training corpus (default: the papers' prompts); any text still encodes.
        seed: weight initialisation seed.
        patch_size: ViT patch size in pixels.
        hidden_size, num_layers, num_heads: transformer width, depth and attention heads of both towers.
        projection_dim: D, the joint embedding size.
        vocab_size: at most this many tokens (see :func:`~vlmrm_jax.models.tokenizer.build_clip_tokenizer`).
        context_length: tokens per prompt (text position embeddings).

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        VlmrmError: if ``image_size`` is not a positive multiple of ``patch_size``, ``hidden_size`` is not a
            multiple of ``num_heads``, or the tokenizer settings are out of range.
    """
    if image_size <= 0 or patch_size <= 0 or image_size % patch_size:
        raise VlmrmError(f"image_size={image_size} is not a positive multiple of patch_size={patch_size}; "
                         f"pass e.g. image_size={max(patch_size, 1) * 4}")
    if num_heads <= 0 or hidden_size % num_heads:
        raise VlmrmError(f"hidden_size={hidden_size} is not a multiple of num_heads={num_heads}; "
                         f"pass a hidden_size divisible by num_heads")
    path = Path(path)
    tokenizer = build_clip_tokenizer(path, DEFAULT_VOCAB_TEXTS if vocab_texts is None else vocab_texts,
                                     vocab_size=vocab_size, model_max_length=context_length)
    tower = dict(hidden_size=hidden_size, intermediate_size=4 * hidden_size, num_hidden_layers=num_layers,
                 num_attention_heads=num_heads)
    config = CLIPConfig(
        text_config=dict(tower, vocab_size=len(tokenizer), max_position_embeddings=context_length,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(tower, image_size=image_size, patch_size=patch_size),
        projection_dim=projection_dim)
    model = FlaxCLIPModel(config, _do_init=False)

    @jax.jit
    def init(key):
        init_key, kernel_key = jax.random.split(key)
        return _fan_in_kernels(model.init_weights(init_key, model.input_shape), kernel_key)

    model.save_pretrained(path, params=init(jax.random.PRNGKey(seed)))
    CLIPImageProcessor(size={"shortest_edge": image_size},
                       crop_size={"height": image_size, "width": image_size}).save_pretrained(path)
    return path
