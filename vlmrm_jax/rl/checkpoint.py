"""Atomic orbax checkpoints of a whole training state, keyed by env step.

orbax writes each checkpoint into a temporary directory and renames it when complete, so a run killed while saving
leaves the previous checkpoint intact; :meth:`Checkpoints.restore` only ever sees finished ones.

orbax refuses zero-size arrays (an MJX state holds some, e.g. ``act`` of a model without actuator activations), so
they are left out of the saved tree and rebuilt, as zeros of their shape and dtype, from the abstract state on
restore.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from vlmrm_jax.errors import CheckpointError


class Checkpoints:
    """The checkpoints of one run: ``<directory>/<env_step>/{state,meta}``.

    Args:
        directory: where checkpoints live (created on first save).
        max_to_keep: number of most recent checkpoints kept.
    """

    def __init__(self, directory: str | Path, max_to_keep: int = 2):
        self.directory = Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

    def latest_step(self) -> int | None:
        """The env step of the newest complete checkpoint, or None if there is none."""
        return self._manager.latest_step()

    def save(self, step: int, state: Any, meta: dict | None = None) -> None:
        """Saves ``state`` (a pytree of arrays) and JSON-serialisable ``meta`` as checkpoint ``step``; blocks until
        written."""
        self._manager.save(int(step), args=ocp.args.Composite(
            state=ocp.args.StandardSave(_drop_empty(state)), meta=ocp.args.JsonSave(meta or {})), force=True)
        self._manager.wait_until_finished()

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restores a checkpoint into the structure of ``abstract_state``.

        Args:
            abstract_state: pytree with the saved structure (arrays or ``jax.ShapeDtypeStruct``, e.g. from
                ``jax.eval_shape``).
            step: which checkpoint; default the latest.

        Returns:
            (state, meta).

        Raises:
            CheckpointError: if there is no checkpoint, or it is corrupt or does not match ``abstract_state``.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint found in {self.directory}; start a new run without --resume")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(_drop_empty(abstract)), meta=ocp.args.JsonRestore()))
        except Exception as e:  # orbax raises many types (ValueError, FileNotFoundError, tensorstore errors)
            raise CheckpointError(
                f"checkpoint {self.directory / str(step)} is corrupt or from an incompatible run "
                f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); delete it to fall back "
                f"to an older one, or start a new run in an empty --out directory") from None
        state = jax.tree.map(lambda x, a: jnp.zeros(a.shape, a.dtype) if x is None and a is not None else x,
                             restored.state, abstract, is_leaf=lambda x: x is None)
        return state, dict(restored.meta or {})

    def close(self) -> None:
        """Waits for pending writes and releases the manager."""
        self._manager.close()


def _drop_empty(tree: Any) -> Any:
    """``tree`` with every zero-size leaf replaced by None (which orbax saves as an empty node)."""
    return jax.tree.map(lambda x: None if x.size == 0 else x, tree)


def save_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` via a temporary file and a rename, so readers never see a partial file."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def save_json_atomic(path: str | Path, obj: Any) -> None:
    """Writes ``obj`` as JSON to ``path`` atomically (:func:`save_bytes_atomic`)."""
    save_bytes_atomic(path, json.dumps(obj, indent=2, sort_keys=True).encode())
