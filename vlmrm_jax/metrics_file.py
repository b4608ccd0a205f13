"""The JSON-lines metrics file that every training loop writes (``metrics.jsonl``: one JSON object per line), read
back the same way by the RL trainer (:mod:`vlmrm_jax.rl.trainer`) and the supervised loop (:mod:`vlmrm_jax.fitting`).
"""

from __future__ import annotations

import json
from pathlib import Path

from vlmrm_jax.errors import VlmrmError

METRICS_FILE = "metrics.jsonl"


def parse_metrics(path: str | Path) -> list[dict]:
    """The records of a metrics file, in file order (blank lines are ignored).

    A last line that is not JSON is dropped: a run killed while writing it (a line is written before the checkpoint
    that covers it, so no checkpoint covers a torn line and a resumed run writes it again).

    Raises:
        VlmrmError: naming the file and line, when a line before the last is not JSON (the file was edited or
            damaged, so records would be lost silently).
    """
    path = Path(path)
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:
                break
            raise VlmrmError(f"{path} line {i + 1} of {len(lines)} is not JSON ({e.msg}); the file was edited or "
                             "damaged: remove that line and run again") from None
    return records
