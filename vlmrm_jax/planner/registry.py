"""Short names of the subgoal planners shipped inside the package, for machines without the Hugging Face hub.

Each name maps to a directory under ``vlmrm_jax/models/weights/<name>/`` in the Hugging Face T5 layout
(``config.json``, ``flax_model.msgpack``, tokenizer files) plus the planner's own files: ``planner.json`` (static
lengths), ``subgoals.json`` (the captions it was trained to output) and ``prompt.txt`` (its prompt template).
"""

from __future__ import annotations

from pathlib import Path

from vlmrm_jax.errors import ModelNotFoundError
from vlmrm_jax.models.registry import WEIGHTS_DIR

#: Shipped planners: short name -> packaged directory. ``stacking-t5-tiny`` is a small T5 trained from scratch on
#: phrasings of the block-stacking instructions (``python -m experiments.train_planner``; rebuild command and
#: held-out accuracy in ``docs/planner.md``): it knows only that task family.
PLANNER_MODELS: dict[str, Path] = {name: WEIGHTS_DIR / name for name in ("stacking-t5-tiny",)}

#: Files a shipped planner directory must hold.
REQUIRED_FILES = ("config.json", "flax_model.msgpack", "tokenizer.json")


def resolve_planner(name: str) -> str:
    """The directory of the shipped planner ``name``.

    Raises:
        ModelNotFoundError: if ``name`` is not a shipped planner, or its files are missing from the installed package.
    """
    known = ", ".join(sorted(PLANNER_MODELS))
    if name not in PLANNER_MODELS:
        raise ModelNotFoundError(f"{name!r} is not a shipped planner (known: {known}); pass --model with one of "
                                 f"those names, a local T5 directory, or a Hugging Face hub id")
    path = PLANNER_MODELS[name]
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise ModelNotFoundError(f"shipped planner {name!r} is incomplete: {', '.join(missing)} missing from {path}; "
                                 f"reinstall the package (pip install -e . from a full checkout), rebuild it with "
                                 f"the command in docs/planner.md, or pass --model PATH to a local T5 directory")
    return str(path)
