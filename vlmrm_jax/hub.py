"""Where a model's files come from (a local directory in the Hugging Face layout or a Hugging Face hub id) and how a
failure to load them is told in one line; shared by the CLIP loader (:mod:`vlmrm_jax.models.loading`) and the T5
loader (:mod:`vlmrm_jax.planner.loading`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id


class LoadFailure(Exception):
    """Why loading failed, in words; a loader turns it into a :class:`~vlmrm_jax.errors.ModelNotFoundError` that
    adds the model's name and the fix."""


class ModelSource(NamedTuple):
    """What :func:`model_source` returns: ``source`` (the directory or hub id to load from), ``path`` (``source``
    as a path, ``~`` expanded) and ``is_local`` (a directory, existing or not, rather than a hub id)."""

    source: str
    path: Path
    is_local: bool


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set now (huggingface_hub reads it only once, at import)."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in ("1", "ON", "YES", "TRUE")


def is_hub_id(name: str) -> bool:
    """Whether ``name`` can be a hub id (``owner/name`` or ``name``); relative (``./``, ``~``) and absolute paths
    cannot."""
    if name.startswith((".", "~")) or os.path.isabs(name):
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def first_line(error: BaseException) -> str:
    """The first non-blank line of ``error``'s message (its type's name if none), at most 240 characters."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= 240 else text[:237] + "..."


def model_source(source: str) -> ModelSource:
    """Decides whether ``source`` (a shipped model already resolved to its directory, a path or a hub id) is loaded
    from a local directory: it is when the path exists or when it cannot be a hub id."""
    path = Path(source).expanduser()
    is_local = path.exists() or not is_hub_id(source)
    return ModelSource(str(path) if is_local else source, path, is_local)


def check_model_dir(path: Path, weight_files: Sequence[str], tokenizer_files: Sequence[Sequence[str]]) -> None:
    """Checks that a local model directory holds config.json, one of ``weight_files`` (the first is named in the
    message) and one complete set of ``tokenizer_files`` (e.g. ``[["tokenizer.json"], ["spiece.model"]]``).

    Raises:
        LoadFailure: naming the directory and the first missing part.
    """
    if not path.exists():
        raise LoadFailure(f"no such directory {path}")
    if not path.is_dir():
        raise LoadFailure(f"{path} is a file, not a model directory")
    if not (path / "config.json").is_file():
        raise LoadFailure(f"no config.json in {path}")
    if not any((path / f).is_file() for f in weight_files):
        raise LoadFailure(f"no weights in {path} (missing flax_model.msgpack; model.safetensors or pytorch_model.bin "
                          f"would also do)")
    if not any(all((path / f).is_file() for f in files) for files in tokenizer_files):
        names = " or ".join(" + ".join(files) for files in tokenizer_files)
        raise LoadFailure(f"no tokenizer in {path} (missing {names})")


def load_error_reason(error: BaseException, where: ModelSource, offline: bool) -> str:
    """Why loading from ``where`` failed, in words, for an exception that transformers, huggingface_hub or a weights
    reader raised (OSError when offline or for a missing file, TypeError for a hub id that is only partly cached,
    ValueError for weights that do not fit the config...)."""
    if where.is_local:
        return f"{where.path} holds an unreadable or incompatible model ({first_line(error)})"
    if offline and isinstance(error, (OSError, TypeError)):
        return ("it is not a local directory, and HF_HUB_OFFLINE is set but the local Hugging Face cache does not "
                "hold all of its files")
    return (f"it is not a local directory, and loading it from the Hugging Face {'cache' if offline else 'hub'} "
            f"failed ({first_line(error)})")
