"""Finds and loads the parts of a CLIP (Flax model, weights, tokenizer, normalisation) by hub id, path or name.

Every failure, whatever transformers or huggingface_hub raise for it (OSError when offline or for a missing file,
TypeError for a hub id that is only partly cached, ValueError for weights that do not fit the config,
SafetensorError for a truncated file), becomes one :class:`~vlmrm_jax.errors.ModelNotFoundError` line: what was
tried, why it failed, what to do.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax.traverse_util import flatten_dict
from safetensors import SafetensorError
from transformers import CLIPConfig, CLIPImageProcessor, CLIPTokenizerFast, FlaxCLIPModel
from transformers.utils import has_file

from vlmrm_jax.errors import ModelNotFoundError
from vlmrm_jax.hub import LoadFailure, check_model_dir, hub_offline, load_error_reason, model_source
from vlmrm_jax.models.preprocess import CLIP_MEAN, CLIP_STD
from vlmrm_jax.models.registry import OFFLINE_MODELS, resolve_model

FLAX_WEIGHT_FILES = ("flax_model.msgpack", "flax_model.msgpack.index.json")
WEIGHT_FILES = FLAX_WEIGHT_FILES + ("model.safetensors", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"))


class CLIPComponents(NamedTuple):
    """What :func:`load_components` returns."""

    model: FlaxCLIPModel  # created with _do_init=False: config and module, not the weights
    params: Any  # the weights pytree, on JAX's default device
    tokenizer: CLIPTokenizerFast
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]


def _torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def _fix(offline: bool) -> str:
    shipped = f", use a shipped offline model ({', '.join(sorted(OFFLINE_MODELS))})" if OFFLINE_MODELS else ""
    hub = ("load a hub id once with network access (HF_HUB_OFFLINE unset) to fill the cache" if offline else
           "set HF_HUB_OFFLINE=1 with a Hugging Face cache that holds the hub id")
    return ("pass --model PATH to a local CLIP directory (config.json + flax_model.msgpack or model.safetensors, "
            f"tokenizer files){shipped}, or {hub}")


def _load_config(source: str, offline: bool) -> CLIPConfig:
    config_dict, _ = CLIPConfig.get_config_dict(source, local_files_only=offline)
    model_type = config_dict.get("model_type")
    if model_type != "clip":
        raise LoadFailure(f"config.json describes a {model_type!r} model, not a CLIP (model_type 'clip')")
    return CLIPConfig.from_dict(config_dict)


def _load_weights(source: str, config: CLIPConfig, dtype: jnp.dtype, offline: bool) -> tuple[FlaxCLIPModel, Any]:
    kwargs = dict(config=config, dtype=dtype, local_files_only=offline)
    if any(has_file(source, name, local_files_only=offline) for name in FLAX_WEIGHT_FILES):
        model, params = FlaxCLIPModel.from_pretrained(source, _do_init=False, **kwargs)
    else:
        # PyTorch-format weights. transformers converts them only into an initialised model (random weights first).
        safetensors = has_file(source, "model.safetensors", local_files_only=offline)
        if not safetensors and not _torch_available():
            raise LoadFailure("it has only PyTorch weights (pytorch_model.bin), and converting them needs torch: "
                           "pip install torch")
        params = FlaxCLIPModel.from_pretrained(source, from_pt=not safetensors, **kwargs).params
        model = FlaxCLIPModel(config, dtype=dtype, _do_init=False)
    missing = sorted("/".join(k) for k in model.required_params - set(flatten_dict(params)))
    if missing:
        raise LoadFailure(f"its weights lack {len(missing)} parameters of the model that config.json describes "
                       f"(e.g. {missing[0]}); the weights file does not belong to this config")
    return model, jax.device_put(params, jax.local_devices()[0])


def _load_normalisation(source: str, offline: bool, is_local: bool) -> tuple[tuple, tuple]:
    if is_local and not (Path(source) / "preprocessor_config.json").is_file():
        return CLIP_MEAN, CLIP_STD
    try:
        processor = CLIPImageProcessor.from_pretrained(source, local_files_only=offline)
    except OSError:  # no preprocessor_config.json on the hub or in the cache: CLIP's standard constants
        return CLIP_MEAN, CLIP_STD
    return tuple(map(float, processor.image_mean)), tuple(map(float, processor.image_std))


def load_components(name_or_path: str, dtype: jnp.dtype = jnp.float32) -> CLIPComponents:
    """Loads a CLIP's model, weights, tokenizer and normalisation constants.

    ``name_or_path`` is, in this order: a shipped offline model name (:data:`~vlmrm_jax.models.registry.
    OFFLINE_MODELS`), an existing local directory in the Hugging Face format, a Hugging Face hub id (from the local
    cache, or downloaded; with ``HF_HUB_OFFLINE=1`` only from the cache), else a directory that does not exist.

    Args:
        name_or_path: shipped name, directory or hub id.
        dtype: computation dtype of the Flax model (``jnp.float32`` or ``jnp.bfloat16``); weights stay float32.

    Raises:
        ModelNotFoundError: if any part cannot be loaded; the one-line message names ``name_or_path``, the reason
            and the fix.
    """
    offline = hub_offline()
    where = model_source(resolve_model(name_or_path) if name_or_path in OFFLINE_MODELS else str(name_or_path))
    source = where.source
    try:
        if where.is_local:
            check_model_dir(where.path, WEIGHT_FILES, TOKENIZER_FILES)
        config = _load_config(source, offline)
        model, params = _load_weights(source, config, dtype, offline)
        tokenizer = CLIPTokenizerFast.from_pretrained(source, local_files_only=offline)
        image_mean, image_std = _load_normalisation(source, offline, where.is_local)
    except LoadFailure as e:
        raise ModelNotFoundError(f"cannot load CLIP {str(name_or_path)!r}: {e}; {_fix(offline)}") from e
    except (OSError, TypeError, ValueError, KeyError, NotImplementedError, SafetensorError) as e:
        reason = load_error_reason(e, where, offline)
        raise ModelNotFoundError(f"cannot load CLIP {str(name_or_path)!r}: {reason}; {_fix(offline)}") from e
    return CLIPComponents(model, params, tokenizer, image_mean, image_std)
