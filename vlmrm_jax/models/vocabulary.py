"""The caption vocabulary of an in-domain CLIP, stored with its weights, and the warning for prompts outside it.

A CLIP trained on auto-labelled frames (:mod:`vlmrm_jax.models.training`) has only ever read its training captions:
other prompts give embeddings the training never shaped, so a reward from them means little. Its model directory
therefore holds ``captions.json`` (the :class:`~vlmrm_jax.datasets.CaptionSet` and the environment), and
:func:`warn_unknown_prompts` says so when a run's prompt is not among them. Hub CLIPs have no such file and are
never warned about.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from vlmrm_jax.datasets.captions import CaptionSet, unknown_prompts
from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.models.registry import OFFLINE_MODELS, resolve_model

#: The file in a model directory that holds its caption vocabulary.
MODEL_CAPTIONS_FILE = "captions.json"


def write_model_captions(model_dir: str | Path, captions: CaptionSet, env: str) -> Path:
    """Writes ``captions.json`` ({"env", "baseline", "concepts"}) into ``model_dir``; returns its path."""
    path = Path(model_dir) / MODEL_CAPTIONS_FILE
    path.write_text(json.dumps({"env": env, **captions.to_json()}, indent=2))
    return path


def read_model_captions(model: str | Path) -> tuple[str, CaptionSet] | None:
    """The (env, caption vocabulary) of an in-domain model, or None for a model without one (a hub id, a directory
    without ``captions.json``).

    Args:
        model: a shipped model name, a model directory or a hub id.

    Raises:
        ModelNotFoundError: a shipped name whose files are missing (see :func:`resolve_model`).
        VlmrmError: ``captions.json`` exists but is not valid.
    """
    model = str(model)
    directory = Path(resolve_model(model)) if model in OFFLINE_MODELS else Path(model).expanduser()
    path = directory / MODEL_CAPTIONS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return str(data.get("env", "")), CaptionSet.from_json(data)
    except (json.JSONDecodeError, VlmrmError, AttributeError) as e:
        raise VlmrmError(f"{path} is not a valid caption vocabulary ({e}); re-export the model with "
                         f"python -m experiments.train_vlm, or delete the file") from None


def prompt_warnings(model: str | Path, prompts: Sequence[str], env: str | None = None) -> list[str]:
    """Warning lines for an in-domain model used outside its domain (none for models without ``captions.json``):
    one if ``env`` is given and differs from the model's, and one per prompt it was not trained on.

    Raises:
        VlmrmError: as :func:`read_model_captions`.
    """
    found = read_model_captions(model)
    if found is None:
        return []
    model_env, captions = found
    messages = []
    if env is not None and env != model_env:
        messages.append(f"warning: the in-domain model {str(model)!r} was trained on {model_env!r} frames, but this "
                        f"run is {env!r}; its rewards mean little here. Use the model of {env!r} or a hub CLIP")
    examples = "; ".join(f"{p!r}" for p in [*captions.goal_prompts.values(), captions.baseline_prompt][:3])
    return messages + [f"warning: prompt {p!r} is not among the captions of the in-domain model {str(model)!r} (env {model_env!r}); "
            f"an in-domain model only knows its captions, so its reward for this prompt is unreliable. Use one of "
            f"its captions (e.g. {examples}; all in {MODEL_CAPTIONS_FILE} of the model) or a hub CLIP with --model"
            for p in unknown_prompts(captions, prompts)]


def warn_unknown_prompts(model: str | Path, prompts: Sequence[str], env: str | None = None,
                         log: Callable[[str], None] | None = None) -> list[str]:
    """Emits :func:`prompt_warnings` through ``log`` (default: ``warnings.warn``) and returns them.

    Call it where a run loads its CLIP, with the goal and baseline prompts, e.g.
    ``warn_unknown_prompts(config.model, config.prompts + config.baseline_prompts, env=config.env, log=print)``.
    """
    messages = prompt_warnings(model, prompts, env)
    for message in messages:
        (log or (lambda m: warnings.warn(m, UserWarning, stacklevel=3)))(message)
    return messages


__all__ = ["MODEL_CAPTIONS_FILE", "prompt_warnings", "read_model_captions",
           "warn_unknown_prompts", "write_model_captions"]
