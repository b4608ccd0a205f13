"""Thin command-line experiments over the :mod:`vlmrm_jax` library, sharing one exit-code convention
(:func:`run_cli`) and one reading of comma-separated flag values (:func:`comma_list`). Importing this package
silences two start-up notices a user cannot act on (:func:`quiet_imports`)."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections.abc import Sequence
from typing import Callable, TypeVar

from vlmrm_jax.errors import VlmrmError

#: Start-up notices dropped by :func:`quiet_imports`: mujoco.mjx prints the first two when its optional Warp
#: backend (the ``warp-lang`` package, CUDA only) is absent; transformers logs the third once per process for its
#: Flax classes, which this project uses on purpose (transformers is pinned below 5).
IMPORT_NOISE = ("Failed to import warp:", "Failed to import mujoco_warp:",
                "TensorFlow and JAX classes are deprecated")


class _DropNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(IMPORT_NOISE)


def quiet_imports() -> None:
    """Imports ``mujoco.mjx.warp`` with its two "Failed to import" prints captured (other output passes through)
    and filters transformers' Flax deprecation notice from the ``transformers.modeling_flax_utils`` logger."""
    logger = logging.getLogger("transformers.modeling_flax_utils")
    if not any(isinstance(f, _DropNotices) for f in logger.filters):
        logger.addFilter(_DropNotices())
    if "mujoco.mjx.warp" in sys.modules:
        return
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        import mujoco.mjx.warp  # noqa: F401
    kept = [line for line in captured.getvalue().splitlines(keepends=True) if not line.startswith(IMPORT_NOISE)]
    sys.stdout.write("".join(kept))


quiet_imports()

T = TypeVar("T")


def comma_list(text: str, flag: str, example: str, item: Callable[[str], T] = str) -> list[T]:
    """Reads a comma-separated flag value: ``"0, 0.5,1"`` -> ``[item("0"), item("0.5"), item("1")]`` (entries
    stripped, blank ones dropped).

    Args:
        text: the flag's value as given.
        flag: the flag's name with its dashes (``"--alphas"``), used in messages.
        example: a valid value, shown in messages (``"0,0.5,1"``).
        item: converts one entry; it raises ValueError or VlmrmError on a bad one.

    Raises:
        VlmrmError: naming ``flag``, ``text`` and ``example``, on an empty list, an entry ``item`` rejects (its
            VlmrmError message is kept), or a value given twice.
    """
    entries = [t.strip() for t in str(text).split(",") if t.strip()]
    if not entries:
        raise VlmrmError(f"{flag} {text!r} is empty; pass comma-separated values, e.g. {flag} {example}")
    values = []
    for entry in entries:
        try:
            values.append(item(entry))
        except VlmrmError as e:
            raise VlmrmError(f"{flag} {text!r}: {e}") from None
        except ValueError:
            raise VlmrmError(f"{flag} {text!r}: {entry!r} is not a valid entry; pass e.g. {flag} {example}") from None
    if len(set(values)) != len(values):
        raise VlmrmError(f"{flag} {text!r} repeats a value; pass each once, e.g. {flag} {example}")
    return values


def run_cli(work: Callable[[], object], *, resume_command: str | None = None) -> int:
    """Runs ``work()`` and returns the process exit code.

    0 when it returns; 2, with one ``error: ...`` line on stderr, on a :class:`~vlmrm_jax.errors.VlmrmError` (bad
    input: the message names the value and the fix); 130 on Ctrl-C when ``resume_command`` says how to continue the
    run (without it, Ctrl-C propagates).
    """
    try:
        work()
    except VlmrmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if resume_command is None:
            raise
        print(f"\ninterrupted; continue with: {resume_command}", file=sys.stderr)
        return 130
    return 0


def one_of(choices: Sequence[str]) -> Callable[[str], str]:
    """An ``item`` for :func:`comma_list` that accepts only ``choices``; its VlmrmError names the entry and the
    choices."""

    def check(entry: str) -> str:
        if entry not in choices:
            raise VlmrmError(f"unknown {entry!r}; choose from {', '.join(choices)}")
        return entry

    return check
