"""Plots people would rather look at than read: reward curves."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_reward_curve(records: Sequence[dict], path: str | Path, title: str = "", keys: Sequence[str] = ()) -> Path:
    """Plots ``reward_mean`` (and any ``keys``, on a second axis) against ``env_steps`` and saves a PNG.

    Args:
        records: metrics records as written to ``metrics.jsonl`` (``env_steps``, ``reward_mean``, ...).
        path: output PNG path.
        title: figure title (e.g. the prompt).
        keys: extra metric names to draw on a right-hand axis (e.g. a predicate's fraction of steps).
    """
    path = Path(path)
    steps = [r["env_steps"] for r in records]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot(steps, [r["reward_mean"] for r in records], color="tab:blue", label="mean VLM reward")
    ax.set_xlabel("env steps")
    ax.set_ylabel("mean VLM reward per step", color="tab:blue")
    ax.grid(alpha=0.3)
    extra = [k for k in keys if records and k in records[0]]
    if extra:
        ax2 = ax.twinx()
        for k in extra:
            ax2.plot(steps, [r[k] for r in records], linestyle="--", label=k)
        ax2.set_ylabel("fraction of steps")
        ax2.legend(loc="lower right", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
