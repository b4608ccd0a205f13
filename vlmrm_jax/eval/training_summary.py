"""A training run's learning curve in a few numbers: each logged metric averaged over equal parts of the run.

The by-quarter figures in docs/humanoid_setup.md ("kneeling on training steps, by quarter") are
:func:`summarize_training` over a run's ``metrics.jsonl``; ``python -m experiments.summarize_run --run DIR`` prints
them.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from typing import Sequence

import numpy as np

from vlmrm_jax.errors import VlmrmError

#: Metrics summarised when no pattern is given: the ground-truth predicates' fractions of rollout steps
#: (``env/<predicate>``), the VLM reward (``env/vlm_reward``) and the reward the learner sees (``reward_mean``).
DEFAULT_PATTERNS = ("env/*", "reward_mean")


@dataclasses.dataclass(frozen=True)
class MetricSummary:
    """One metric over a run.

    Attributes:
        name: the metrics.jsonl key (``"env/kneeling"``).
        part_means: ``len == num_parts`` floats: the mean over each part's iterations, first part first.
        max: the largest value any iteration logged.
        last: the last iteration's value.
    """

    name: str
    part_means: tuple[float, ...]
    max: float
    last: float


@dataclasses.dataclass(frozen=True)
class TrainingSummary:
    """A run's ``metrics.jsonl`` in a few numbers (:func:`summarize_training`).

    Attributes:
        iterations: metrics lines read.
        env_steps: the last line's ``env_steps`` (env steps, all envs together).
        wall_s: the last line's ``wall_s`` (seconds of training, summed over the sessions of a resumed run; None
            if absent).
        compile_s: the sum of the lines' ``compile_s`` (seconds; one per session of a resumed run; None if absent).
        steps_per_s_median, steps_per_s_min, steps_per_s_max: env steps per second over the iterations that did not
            compile (the lines without ``compile_s``); None when every line compiled.
        part_bounds: ``num_parts`` ``(first, last)`` env-step pairs, the range of ``env_steps`` each part's lines end
            at.
        metrics: one :class:`MetricSummary` per summarised key, in the order of the first line's keys.
    """

    iterations: int
    env_steps: int
    wall_s: float | None
    compile_s: float | None
    steps_per_s_median: float | None
    steps_per_s_min: float | None
    steps_per_s_max: float | None
    part_bounds: tuple[tuple[int, int], ...]
    metrics: tuple[MetricSummary, ...]

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (``metrics`` keyed by name)."""
        d = dataclasses.asdict(self)
        d["metrics"] = {m.name: {"part_means": list(m.part_means), "max": m.max, "last": m.last}
                        for m in self.metrics}
        d["part_bounds"] = [list(b) for b in self.part_bounds]
        return d


def summarize_training(records: Sequence[dict], num_parts: int = 4,
                       patterns: Sequence[str] = DEFAULT_PATTERNS) -> TrainingSummary:
    """Averages each metric over ``num_parts`` consecutive, near-equal parts of a run's iterations.

    The iterations (metrics lines, in order) are split as ``numpy.array_split`` splits ``len(records)`` items, so
    the first ``len(records) % num_parts`` parts hold one line more; every line of a run covers the same env steps
    (``num_envs * unroll_length * batches`` per iteration), so a part is also a fraction of the run's env steps.
    A metric's part mean is the plain mean of its per-iteration values (each already a fraction or mean over that
    iteration's rollout steps).

    Args:
        records: metrics records as written to ``metrics.jsonl`` (``vlmrm_jax.rl.trainer.read_metrics``), each
            with ``env_steps``; other keys are optional.
        num_parts: parts to split the run into (4: quarters); at least 1 and at most ``len(records)``.
        patterns: ``fnmatch`` patterns of the keys to summarise (default ``env/*`` and ``reward_mean``); a key is
            summarised when it matches one and every line has it as a number.

    Returns:
        A :class:`TrainingSummary`.

    Raises:
        VlmrmError: on no records, a line without ``env_steps``, ``num_parts`` < 1 or > ``len(records)``, or
            patterns that match no key present in every line (the message lists the keys there are).
    """
    records = list(records)
    if not records:
        raise VlmrmError("no metrics records to summarise; pass a run directory whose metrics.jsonl has lines "
                         "(a run writes one per training iteration)")
    missing = [i for i, r in enumerate(records) if "env_steps" not in r]
    if missing:
        raise VlmrmError(f"metrics line {missing[0] + 1} has no 'env_steps'; this is not a training run's "
                         "metrics.jsonl")
    if not 1 <= int(num_parts) <= len(records):
        raise VlmrmError(f"num_parts={num_parts} must be between 1 and the run's {len(records)} metrics lines; "
                         f"pass e.g. num_parts={min(4, len(records))}")
    num_parts = int(num_parts)
    common = [k for k in records[0] if all(isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)
                                           for r in records)]
    keys = [k for k in common if any(fnmatch.fnmatchcase(k, p) for p in patterns)]
    if not keys:
        raise VlmrmError(f"no metric matches {list(patterns)}; the numeric keys in every line are {common}")
    parts = np.array_split(np.arange(len(records)), num_parts)
    metrics = []
    for k in keys:
        values = np.array([r[k] for r in records], np.float64)
        metrics.append(MetricSummary(k, tuple(float(values[p].mean()) for p in parts), float(values.max()),
                                     float(values[-1])))
    speeds = np.array([r["steps_per_s"] for r in records if "compile_s" not in r and "steps_per_s" in r])
    compiles = [r["compile_s"] for r in records if "compile_s" in r]
    last = records[-1]
    return TrainingSummary(
        iterations=len(records), env_steps=int(last["env_steps"]),
        wall_s=float(last["wall_s"]) if "wall_s" in last else None,
        compile_s=float(sum(compiles)) if compiles else None,
        steps_per_s_median=float(np.median(speeds)) if speeds.size else None,
        steps_per_s_min=float(speeds.min()) if speeds.size else None,
        steps_per_s_max=float(speeds.max()) if speeds.size else None,
        part_bounds=tuple((int(records[p[0]]["env_steps"]), int(records[p[-1]]["env_steps"])) for p in parts),
        metrics=tuple(metrics))


def format_summary(summary: TrainingSummary, percent: Sequence[str] = ("env/*",)) -> str:
    """A plain-text table of a :class:`TrainingSummary`: a header with the run's speed, then one row per metric
    (its part means, max and last value). Keys matching a ``percent`` pattern (the predicates' fractions of steps)
    are shown as percentages, except ``env/vlm_reward``, a reward."""
    def fmt(name: str, v: float) -> str:
        as_percent = name != "env/vlm_reward" and any(fnmatch.fnmatchcase(name, p) for p in percent)
        return f"{100 * v:.1f}%" if as_percent else f"{v:.3f}"

    lines = [f"{summary.iterations} iterations, {summary.env_steps:,} env steps"
             + (f", wall {summary.wall_s:.0f} s" if summary.wall_s is not None else "")
             + (f", compile {summary.compile_s:.1f} s" if summary.compile_s is not None else "")]
    if summary.steps_per_s_median is not None:
        lines.append(f"env steps/s without compiling: median {summary.steps_per_s_median:.0f} "
                     f"(min {summary.steps_per_s_min:.0f}, max {summary.steps_per_s_max:.0f})")
    n = len(summary.part_bounds)
    bounds = ", ".join(f"{a:,}-{b:,}" for a, b in summary.part_bounds)
    lines.append(f"means over {n} parts of the run (env steps at their lines: {bounds})")
    width = max(len(m.name) for m in summary.metrics)
    header = [f"part {i + 1}" for i in range(n)] + ["max", "last"]
    lines.append(f"{'metric':<{width}}  " + "  ".join(f"{h:>8}" for h in header))
    for m in summary.metrics:
        cells = [fmt(m.name, v) for v in (*m.part_means, m.max, m.last)]
        lines.append(f"{m.name:<{width}}  " + "  ".join(f"{c:>8}" for c in cells))
    return "\n".join(lines)
