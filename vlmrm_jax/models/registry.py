"""Short names of the CLIP models shipped inside the package, for machines without the Hugging Face hub.

Each name maps to a directory under ``vlmrm_jax/models/weights/<name>/`` in the Hugging Face format
(``config.json``, ``flax_model.msgpack``, tokenizer files, ``preprocessor_config.json``), loaded by
:meth:`vlmrm_jax.models.CLIP.load` like any local directory.
"""

from __future__ import annotations

from pathlib import Path

from vlmrm_jax.errors import ModelNotFoundError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: Shipped offline models: short name -> packaged directory. Each is a small CLIP trained from scratch on auto-labelled
#: frames of one environment (``python -m experiments.train_vlm``; commands, sizes and measured quality in
#: ``docs/offline_models.md``): it knows only its own captions (``captions.json``). ``stacking-clip-tiny`` is also a
#: calibrated subgoal detector (``detector.json``, read by :meth:`vlmrm_jax.models.detection.SubgoalDetector.load`).
OFFLINE_MODELS: dict[str, Path] = {name: WEIGHTS_DIR / name for name in
                                   ("humanoid-clip-tiny", "cartpole-clip-tiny", "mountain-car-clip-tiny",
                                    "stacking-clip-tiny")}

#: Files a shipped model directory must hold.
REQUIRED_FILES = ("config.json", "flax_model.msgpack")


def resolve_model(name: str) -> str:
    """The directory of the shipped offline model ``name``.

    Returns:
        The directory as a string, ready for :meth:`vlmrm_jax.models.CLIP.load`.

    Raises:
        ModelNotFoundError: if ``name`` is not a shipped model, or if its files are missing from the installed
            package (the message lists the known names).
    """
    known = ", ".join(sorted(OFFLINE_MODELS)) or "none in this version"
    if name not in OFFLINE_MODELS:
        raise ModelNotFoundError(f"{name!r} is not a shipped offline model (known: {known}); pass --model with one "
                                 f"of those names, a local CLIP directory, or a Hugging Face hub id")
    path = OFFLINE_MODELS[name]
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise ModelNotFoundError(f"shipped offline model {name!r} is incomplete: {', '.join(missing)} missing from "
                                 f"{path} (known: {known}); reinstall the package (pip install -e . from a full "
                                 f"checkout) or pass --model PATH to a local CLIP directory")
    return str(path)
