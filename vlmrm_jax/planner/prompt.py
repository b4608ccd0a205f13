"""Prompt templates: the text a planner's encoder reads, with the instruction in the place of ``{instruction}``.

A template is a plain-text file (see ``prompts/stacking.txt``, the paper's style of prompt for FLAN-T5: environment
description, two worked examples, then the instruction). Lines starting with ``#`` are comments; the other lines are
joined with single spaces, since T5's tokenizer has no newline token. A template named without a path is one
shipped in ``vlmrm_jax/planner/prompts/`` (its file name without ``.txt``).
"""

from __future__ import annotations

from pathlib import Path

from vlmrm_jax.errors import VlmrmError

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
PLACEHOLDER = "{instruction}"


def shipped_prompts() -> list[str]:
    """Names of the templates shipped in ``vlmrm_jax/planner/prompts/``."""
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.txt"))


def parse_template(text: str, origin: str = "the template") -> str:
    """A template's text without comments, its lines joined by spaces.

    Raises:
        VlmrmError: if it does not hold ``{instruction}`` exactly once (``origin`` names it in the message).
    """
    lines = [line.strip() for line in text.splitlines() if not line.lstrip().startswith("#")]
    template = " ".join(line for line in lines if line)
    if template.count(PLACEHOLDER) != 1:
        raise VlmrmError(f"prompt {origin} holds {PLACEHOLDER} {template.count(PLACEHOLDER)} times; write it exactly "
                         f"once where the instruction goes")
    return template


def load_prompt(name_or_path: str | Path) -> str:
    """The template named ``name_or_path``: a shipped name (e.g. ``"stacking"``) or a path to a text file.

    Raises:
        VlmrmError: if it is neither, cannot be read as UTF-8, or lacks a single ``{instruction}``.
    """
    name = str(name_or_path)
    path = PROMPTS_DIR / f"{name}.txt" if name in shipped_prompts() else Path(name).expanduser()
    if not path.is_file():
        raise VlmrmError(f"prompt {name!r} is neither a shipped prompt ({', '.join(shipped_prompts())}) nor a text "
                         f"file; pass one of those names or the path of a template holding {PLACEHOLDER}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise VlmrmError(f"prompt file {path} cannot be read as UTF-8 text ({type(e).__name__}); pass a plain-text "
                         f"template") from None
    return parse_template(text, str(path))


def format_prompt(template: str, instruction: str) -> str:
    """``template`` with ``{instruction}`` replaced by the instruction (spaces normalised)."""
    return template.replace(PLACEHOLDER, " ".join(instruction.split()))
