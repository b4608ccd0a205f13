"""Plots people would rather look at than read: reward curves, reward landscapes."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure  # figures without pyplot: no global backend change, safe in notebooks


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
    fig = Figure(figsize=(7, 4), dpi=110)
    ax = fig.subplots()
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
    return path


def _min_max(x):
    """Rescales ``x`` to [0, 1] over all its entries (a constant array maps to 0)."""
    x = np.asarray(x, np.float64)
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def plot_reward_landscape(axes: Sequence, grid, true_rewards, clip_rewards, alphas: Sequence[float],
                          epic: Sequence[float], path: str | Path, title: str = "") -> Path:
    """Plots the CLIP reward against the swept state variables for each alpha, with the true reward (VLM-RM, 4.2).

    Every reward is min-max rescaled to [0, 1] over the whole sweep (EPIC ignores scale and offset; the raw values
    are in the CSV next to the figure). One swept variable: one panel of lines. Two: a line panel along each
    variable through the grid point nearest 0 of the other (e.g. the pole angle with the cart at the centre), and a
    row of heat maps over the whole grid (true reward, then one per alpha).

    Args:
        axes: the sweep's axes (:class:`vlmrm_jax.eval.landscape.SweepAxis`; ``name``, ``unit``, ``values()``), 1 or 2.
        grid: float [N, K], the swept values, first axis slowest (:func:`vlmrm_jax.eval.landscape.sweep_grid`).
        true_rewards: float [N], the ground-truth reward of each grid state.
        clip_rewards: float [A, N], the CLIP reward of each grid state per alpha.
        alphas: the A alphas.
        epic: the A EPIC distances to the true reward (shown in the legend).
        path: output PNG path.
        title: figure title.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        ValueError: if there are not 1 or 2 axes.
    """
    path = Path(path)
    shape = tuple(a.points for a in axes)
    if len(shape) not in (1, 2):
        raise ValueError(f"can plot 1 or 2 swept variables, got {len(shape)}")
    true = _min_max(true_rewards).reshape(shape)
    clip = [_min_max(r).reshape(shape) for r in np.asarray(clip_rewards)]
    labels = [f"alpha={a:g} (EPIC {d:.3f})" for a, d in zip(alphas, epic)]
    colours = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.9, len(alphas)))
    label_of = lambda a: f"{a.name} ({a.unit})" if a.unit else a.name  # noqa: E731

    def lines(ax, axis, take):
        x = axis.values()
        ax.plot(x, take(true), color="black", linestyle="--", linewidth=2, label="true reward")
        for r, label, colour in zip(clip, labels, colours):
            ax.plot(x, take(r), color=colour, label=label)
        ax.set_xlabel(label_of(axis))
        ax.set_ylabel("reward, rescaled to [0, 1]")
        ax.grid(alpha=0.3)

    if len(shape) == 1:
        fig = Figure(figsize=(7, 4), dpi=110)
        ax = fig.subplots()
        lines(ax, axes[0], lambda r: r)
        ax.legend(fontsize=7, loc="best", framealpha=0.8)
    else:
        heat = len(alphas) + 1
        fig = Figure(figsize=(max(10, 2.2 * heat), 7.5), dpi=110)
        spec = fig.add_gridspec(2, 2 * heat)
        middle = [int(np.argmin(np.abs(a.values()))) for a in axes]
        for k in range(2):
            ax = fig.add_subplot(spec[0, k * heat:(k + 1) * heat])
            other = axes[1 - k]
            take = (lambda r: r[:, middle[1]]) if k == 0 else (lambda r: r[middle[0], :])
            lines(ax, axes[k], take)
            ax.set_title(f"{other.name} = {other.values()[middle[1 - k]]:.2f} {other.unit}", fontsize=8)
            if k == 1:
                ax.legend(fontsize=7)
        extent = [axes[1].low, axes[1].high, axes[0].low, axes[0].high]
        for i, (r, name) in enumerate(zip([true, *clip], ["true reward", *[f"alpha={a:g}" for a in alphas]])):
            ax = fig.add_subplot(spec[1, 2 * i:2 * i + 2])
            ax.imshow(r, origin="lower", aspect="auto", extent=extent, cmap="viridis", vmin=0, vmax=1)
            ax.set_title(name, fontsize=8)
            ax.set_xlabel(label_of(axes[1]), fontsize=7)
            if i == 0:
                ax.set_ylabel(label_of(axes[0]), fontsize=7)
            ax.tick_params(labelsize=6)
    fig.suptitle(textwrap.fill(title, 110 if len(shape) == 2 else 80), fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return path
