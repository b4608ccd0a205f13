"""Finds and loads a T5 (config, weights, tokenizer) by shipped name, local directory or Hugging Face hub id, and
saves one in the Hugging Face Flax layout.

Weights are read without transformers' model classes (whose T5 fails on jax >= 0.10, see
:mod:`vlmrm_jax.planner.t5`): ``flax_model.msgpack`` with flax's msgpack reader, ``model.safetensors`` with
safetensors' NumPy reader, ``pytorch_model.bin`` with torch (needs ``pip install torch``); sharded checkpoints
through their ``*.index.json``. PyTorch names map one to one onto the Flax names (``q.weight`` -> ``q/kernel``
transposed; embeddings and norms unchanged).

Every failure, whatever transformers, huggingface_hub, safetensors or the tokenizer libraries raise for it, becomes
one :class:`~vlmrm_jax.errors.ModelNotFoundError` line: what was tried, why it failed, what to do (as
:func:`vlmrm_jax.models.loading.load_components` does for CLIP).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from flax import serialization
from flax.traverse_util import flatten_dict, unflatten_dict
from transformers import T5Config, T5TokenizerFast
from transformers.utils import cached_file

from vlmrm_jax.errors import ModelNotFoundError
from vlmrm_jax.hub import LoadFailure, check_model_dir, first_line, hub_offline, load_error_reason, model_source
from vlmrm_jax.planner.registry import PLANNER_MODELS, resolve_planner
from vlmrm_jax.planner.t5 import T5Architecture, param_shapes

#: Weight files, in the order they are tried (a single file, then a sharded checkpoint's index).
WEIGHT_FILES = ("flax_model.msgpack", "flax_model.msgpack.index.json", "model.safetensors",
                "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = (("tokenizer.json",), ("spiece.model",))


class T5Components(NamedTuple):
    """What :func:`load_t5` returns: the architecture, the weights (on JAX's default device), the tokenizer, and
    ``read_text(name)``, which returns the text of an optional extra file of the model (None if absent)."""

    arch: T5Architecture
    params: Any
    tokenizer: T5TokenizerFast
    read_text: Any


def _fix(offline: bool) -> str:
    hub = ("load the hub id once with network access (HF_HUB_OFFLINE unset) to fill the cache" if offline else
           "set HF_HUB_OFFLINE=1 with a Hugging Face cache that holds the hub id")
    return (f"pass --model with a shipped planner ({', '.join(sorted(PLANNER_MODELS))}), a local T5 directory "
            f"(config.json, flax_model.msgpack or model.safetensors, tokenizer.json or spiece.model), or {hub}")


def _file(source: str, name: str, offline: bool) -> str | None:
    return cached_file(source, name, local_files_only=offline, _raise_exceptions_for_missing_entries=False,
                       _raise_exceptions_for_connection_errors=False)


def _load_config(source: str, offline: bool) -> T5Config:
    config_dict, _ = T5Config.get_config_dict(source, local_files_only=offline)
    if config_dict.get("model_type") != "t5":
        raise LoadFailure(f"config.json describes a {config_dict.get('model_type')!r} model, not a T5 "
                       f"(model_type 't5')")
    return T5Config.from_dict(config_dict)


def pytorch_to_flax(state_dict: Mapping[str, np.ndarray]) -> dict:
    """transformers' PyTorch T5 weights (names like ``encoder.block.0.layer.0.SelfAttention.q.weight``) as the Flax
    parameter tree of :class:`~vlmrm_jax.planner.t5.T5`. Linear weights [out, in] become kernels [in, out]; the
    tied copies ``encoder.embed_tokens`` and ``decoder.embed_tokens`` of ``shared`` are dropped."""
    flat = {}
    for name, value in state_dict.items():
        path = tuple(name.split("."))
        if path[-1] != "weight" or path[1:2] == ("embed_tokens",):
            continue
        value = np.asarray(value, np.float32)
        if path[0] == "shared" or path[-2] == "relative_attention_bias":
            flat[path[:-1] + ("embedding",)] = value
        elif "layer_norm" in path[-2]:
            flat[path] = value
        else:
            flat[path[:-1] + ("kernel",)] = value.T
    return unflatten_dict(flat)


def _read_weight_file(path: str, name: str) -> dict:
    """One weight file as a Flax tree (nested dict of numpy arrays)."""
    if name.startswith("flax_model"):
        tree = serialization.msgpack_restore(Path(path).read_bytes())
        flat = flatten_dict(tree)
        if all(len(k) == 1 and "/" in k[0] for k in flat):  # a shard of a sharded Flax checkpoint: "a/b/c" keys
            return unflatten_dict({tuple(k[0].split("/")): v for k, v in flat.items()})
        return tree
    if name.startswith("model.safetensors"):
        from safetensors import safe_open

        with safe_open(path, framework="np") as f:
            arrays = {k: f.get_tensor(k) for k in f.keys()}
            metadata = f.metadata() or {}
        if metadata.get("format") == "flax":
            return unflatten_dict({tuple(k.split(".")): v for k, v in arrays.items()})
        return pytorch_to_flax(arrays)
    if importlib.util.find_spec("torch") is None:
        raise LoadFailure("it has only PyTorch weights (pytorch_model.bin), and reading them needs torch: "
                       "pip install torch")
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    return pytorch_to_flax({k: v.float().numpy() for k, v in state.items()})


def _merge(trees: list[dict]) -> dict:
    flat = {}
    for tree in trees:
        flat.update(flatten_dict(tree))
    return unflatten_dict(flat)


def _load_params(source: str, arch: T5Architecture, offline: bool) -> Any:
    for name in WEIGHT_FILES:
        path = _file(source, name, offline)
        if path is None:
            continue
        if name.endswith(".index.json"):
            shards = sorted(set(json.loads(Path(path).read_text())["weight_map"].values()))
            trees = []
            for shard in shards:
                shard_path = _file(source, shard, offline)
                if shard_path is None:
                    raise LoadFailure(f"its {name} names the shard {shard}, which is missing")
                trees.append(_read_weight_file(shard_path, name))
            params = _merge(trees)
        else:
            params = _read_weight_file(path, name)
        return _check_params(params, arch)
    raise LoadFailure("it has no weights (flax_model.msgpack, model.safetensors or pytorch_model.bin)")


def _check_params(params: dict, arch: T5Architecture) -> Any:
    """``params`` restricted to the model's parameters (extra entries, e.g. an unused cross-attention bias table of
    old PyTorch checkpoints, are dropped), as float32 arrays on the default device."""
    expected = flatten_dict(param_shapes(arch))
    flat = flatten_dict(params)
    missing = sorted("/".join(k) for k in expected if k not in flat)
    if missing:
        raise LoadFailure(f"its weights lack {len(missing)} parameters of the T5 that config.json describes (e.g. "
                       f"{missing[0]}); the weights file does not belong to this config")
    for key, spec in expected.items():
        if tuple(np.shape(flat[key])) != tuple(spec.shape):
            raise LoadFailure(f"its weight {'/'.join(key)} has shape {tuple(np.shape(flat[key]))}, but config.json "
                           f"needs {tuple(spec.shape)}; the weights file does not belong to this config")
    kept = {k: np.asarray(flat[k], np.float32) for k in expected}
    return jax.device_put(unflatten_dict(kept), jax.local_devices()[0])


def _load_tokenizer(source: str, offline: bool, label: str) -> T5TokenizerFast:
    try:
        return T5TokenizerFast.from_pretrained(source, local_files_only=offline)
    except Exception as e:  # tokenizers, sentencepiece and protobuf raise bare Exception/RuntimeError on bad files
        if isinstance(e, OSError) and not Path(source).exists():
            raise  # a hub problem, reported by load_t5 like any other
        raise LoadFailure(f"its tokenizer files (tokenizer.json / spiece.model) are unreadable or corrupt "
                       f"({type(e).__name__}: {first_line(e)}); restore them from where {label} came from, or "
                       f"rebuild the model") from None


def load_t5(name_or_path: str | Path) -> T5Components:
    """Loads a T5's architecture, weights and tokenizer.

    ``name_or_path`` is, in this order: a shipped planner name (:data:`~vlmrm_jax.planner.registry.
    PLANNER_MODELS`), an existing local directory in the Hugging Face layout, a hub id (from the local cache, or
    downloaded; with ``HF_HUB_OFFLINE=1`` only from the cache), else a directory that does not exist.

    Raises:
        ModelNotFoundError: if any part cannot be loaded; the one-line message names ``name_or_path``, the reason
            and the fix.
    """
    label = str(name_or_path)
    offline = hub_offline()
    where = model_source(resolve_planner(label) if label in PLANNER_MODELS else label)
    source = where.source
    try:
        if where.is_local:
            check_model_dir(where.path, WEIGHT_FILES, TOKENIZER_FILES)
        arch = T5Architecture.from_config(_load_config(source, offline))
        params = _load_params(source, arch, offline)
        tokenizer = _load_tokenizer(source, offline, label)
    except LoadFailure as e:
        raise ModelNotFoundError(f"cannot load T5 {label!r}: {e}; {_fix(offline)}") from None
    except (OSError, TypeError, ValueError, KeyError, NotImplementedError) as e:
        raise ModelNotFoundError(f"cannot load T5 {label!r}: {load_error_reason(e, where, offline)}; "
                                 f"{_fix(offline)}") from None
    if tokenizer.vocab_size > arch.vocab_size:
        raise ModelNotFoundError(f"cannot load T5 {label!r}: its tokenizer has {tokenizer.vocab_size} tokens but the "
                                 f"model only {arch.vocab_size}; the tokenizer files belong to another model")

    def read_text(name: str) -> str | None:
        file = _file(source, name, offline)
        return None if file is None else Path(file).read_text(encoding="utf-8")

    return T5Components(arch, params, tokenizer, read_text)


def save_t5(directory: str | Path, arch: T5Architecture, params: Any, tokenizer) -> None:
    """Writes ``config.json``, ``flax_model.msgpack`` and the tokenizer files into ``directory`` (created): the
    layout :func:`load_t5` and transformers' ``FlaxT5ForConditionalGeneration.from_pretrained`` read."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arch.to_config().save_pretrained(directory)
    params = jax.tree.map(lambda x: np.asarray(x, np.float32), params)
    (directory / "flax_model.msgpack").write_bytes(serialization.to_bytes(params))
    tokenizer.save_pretrained(directory)
