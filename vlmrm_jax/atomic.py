"""Directories written all-or-nothing: built under a temporary name next to the target and renamed into place."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_directory(out: str | Path) -> Iterator[Path]:
    """Yields an empty temporary directory beside ``out``; when the block completes it replaces ``out`` (an existing
    ``out`` is removed after the rename), and when the block raises it is deleted, leaving ``out`` untouched.

    Readers therefore see either the old ``out`` or the complete new one, never a partial directory. The result has
    a normal directory's permissions (``0777 & ~umask``), not ``mkdtemp``'s private 0700.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o777 & ~_umask())
    try:
        yield tmp
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, trash / out.name)
            os.replace(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
