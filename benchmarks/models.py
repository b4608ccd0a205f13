"""The CLIPs the benchmark runs: named sizes with random weights, their PyTorch twins, and FLOPs per image.

No pretrained weights are needed for a throughput benchmark: ``vit-b-32`` is a CLIP with OpenAI ViT-B/32's
architecture (:data:`VIT_B_32`) and random weights, written once to a cache directory in the Hugging Face format and
loaded through :meth:`vlmrm_jax.models.CLIP.load` like a real checkpoint. A local directory or hub id benchmarks a
real CLIP instead. The PyTorch reference gets the *same* weights (:func:`torch_twin`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from vlmrm_jax.errors import VlmrmError

TINY = "tiny"
VIT_B_32 = "vit-b-32"
#: Named models of ``--model`` (anything else is a local CLIP directory or a Hugging Face hub id).
MODEL_NAMES = (TINY, VIT_B_32)

#: OpenAI CLIP ViT-B/32 (``openai/clip-vit-base-patch32``): vision tower 224 px, 32 px patches, width 768, 12 layers,
#: 12 heads, MLP 3072; text tower width 512, 12 layers, 8 heads, MLP 2048; 512-d joint embedding.
VIT_B_32_CONFIG = {
    "vision_config": dict(image_size=224, patch_size=32, hidden_size=768, intermediate_size=3072,
                          num_hidden_layers=12, num_attention_heads=12),
    "text_config": dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8,
                        max_position_embeddings=77),
    "projection_dim": 512,
}


def default_cache_dir() -> Path:
    """Where named models are written once: ``$XDG_CACHE_HOME/vlmrm_jax/benchmark_models`` (``~/.cache/...``)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "vlmrm_jax" / "benchmark_models"


def _complete(path: Path) -> bool:
    return all((path / f).is_file() for f in ("config.json", "flax_model.msgpack", "preprocessor_config.json"))


def create_random_clip(path: str | Path, config: dict, *, seed: int = 0) -> Path:
    """Writes a randomly initialised CLIP of the given architecture in the Hugging Face format.

    Files: ``config.json`` and ``flax_model.msgpack`` (``FlaxCLIPModel.save_pretrained``; transformers' own
    initialisation), a byte-level BPE tokenizer trained on the papers' prompts
    (:func:`vlmrm_jax.models.build_clip_tokenizer`; the vocabulary is small, which changes only the text tower's
    embedding table) and ``preprocessor_config.json`` (CLIP's constants at the model's input size).

    Args:
        path: output directory.
        config: ``{"vision_config": {...}, "text_config": {...}, "projection_dim": D}`` as in ``CLIPConfig``.
        seed: weight initialisation seed.

    Returns:
        ``path`` as a :class:`pathlib.Path`.
    """
    import jax
    from transformers import CLIPConfig, CLIPImageProcessor, FlaxCLIPModel

    from vlmrm_jax.models import build_clip_tokenizer
    from vlmrm_jax.models.tiny import DEFAULT_VOCAB_TEXTS

    path = Path(path)
    text = dict(config["text_config"])
    tokenizer = build_clip_tokenizer(path, DEFAULT_VOCAB_TEXTS, model_max_length=text["max_position_embeddings"])
    text.update(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    clip_config = CLIPConfig(text_config=text, vision_config=config["vision_config"],
                             projection_dim=config["projection_dim"])
    model = FlaxCLIPModel(clip_config, _do_init=False)
    params = jax.jit(model.init_weights, static_argnums=1)(jax.random.PRNGKey(seed), model.input_shape)
    model.save_pretrained(path, params=params)
    size = config["vision_config"]["image_size"]
    CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}).save_pretrained(path)
    return path


def model_directory(name: str, cache_dir: str | Path | None = None, log=print) -> str:
    """The directory (or hub id) to load for ``--model name``, creating a named model on first use.

    ``tiny``: :func:`vlmrm_jax.models.create_tiny_clip`'s defaults (32 px input, 8 px patches, width 32, 2 layers).
    ``vit-b-32``: :data:`VIT_B_32_CONFIG` with random weights (~600 MB on disk, written once). Anything else is
    returned unchanged for :meth:`vlmrm_jax.models.CLIP.load` (local directory or hub id).

    Raises:
        VlmrmError: if ``name`` is empty.
    """
    if not name or not str(name).strip():
        raise VlmrmError(f"--model {name!r} is empty; pass {' or '.join(MODEL_NAMES)}, a local CLIP directory or a "
                         f"Hugging Face hub id")
    if name not in MODEL_NAMES:
        return name
    path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = path / name
    if _complete(path):
        return str(path)
    log(f"creating the {name} CLIP (random weights) in {path} ...")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=path.parent))
    try:
        if name == TINY:
            from vlmrm_jax.models import create_tiny_clip

            create_tiny_clip(tmp)
        else:
            create_random_clip(tmp, VIT_B_32_CONFIG)
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)  # atomic: a killed run leaves no half-written model behind
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(path)


def torch_twin(clip):
    """transformers' PyTorch ``CLIPModel`` holding exactly the weights of ``clip`` (a :class:`vlmrm_jax.models.CLIP`),
    in eval mode on the CPU (float32).

    Raises:
        VlmrmError: if torch is not installed (``pip install -e ".[bench]"``).
    """
    try:
        import torch  # noqa: F401
    except ImportError:
        raise VlmrmError('the reference pipeline needs PyTorch: pip install -e ".[bench]" (or pass --no-reference)'
                         ) from None
    import warnings

    from transformers import CLIPModel
    from transformers.modeling_flax_pytorch_utils import load_flax_weights_in_pytorch_model

    with warnings.catch_warnings():  # torch warns that the (read-only) JAX arrays are not writable; never written
        warnings.simplefilter("ignore", UserWarning)
        return load_flax_weights_in_pytorch_model(CLIPModel(clip.model.config), clip.params).eval()


def vision_gflops(clip_config) -> float:
    """Forward FLOPs of CLIP's image tower for one image, in GFLOP (2 FLOPs per multiply-accumulate).

    Counts the matrix products (patch embedding; per layer the Q/K/V and output projections, the attention scores and
    the weighted sum of values, the two MLP layers; the final projection) for ``n = (S / P)^2 + 1`` tokens of width
    ``d``; layer norms, softmax and activations (O(n d) each) are left out. ViT-B/32 at 224 px: 8.8 GFLOP.

    Args:
        clip_config: a transformers ``CLIPConfig``.
    """
    v = clip_config.vision_config
    patches = (v.image_size // v.patch_size) ** 2
    n, d, m = patches + 1, v.hidden_size, v.intermediate_size
    macs_per_layer = 4 * n * d * d + 2 * n * n * d + 2 * n * d * m
    macs = patches * 3 * v.patch_size ** 2 * d + v.num_hidden_layers * macs_per_layer + d * clip_config.projection_dim
    return 2 * macs / 1e9
