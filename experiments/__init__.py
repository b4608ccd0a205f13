"""Thin command-line experiments over the :mod:`vlmrm_jax` library, sharing one exit-code convention
(:func:`run_cli`)."""

from __future__ import annotations

import sys
from typing import Callable

from vlmrm_jax.errors import VlmrmError


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
