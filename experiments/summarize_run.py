"""Summarise a training run's learning curve: each logged metric averaged over quarters of the run.

    python -m experiments.summarize_run --run runs/kneel_paper_s3

Reads the run's metrics.jsonl (one line per training iteration) and prints the compile time, the env steps per
second of the iterations that did not compile (median, min, max) and, for every ground-truth predicate's fraction
of rollout steps (env/kneeling, env/fallen, ...), the VLM reward (env/vlm_reward) and reward_mean, its mean over
each quarter of the run's iterations, its max and its last value. These are the by-quarter figures of
docs/humanoid_setup.md. --json FILE also writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from experiments import run_cli
from vlmrm_jax.errors import VlmrmError


def build_parser() -> argparse.ArgumentParser:
    """The flags; every flag's help states its default."""
    p = argparse.ArgumentParser(prog="python -m experiments.summarize_run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, metavar="DIR", help="the --out directory of a training run (required, "
                                                               "no default)")
    p.add_argument("--parts", type=int, default=4, metavar="N",
                   help="consecutive parts to average over (default: %(default)s, quarters)")
    p.add_argument("--keys", nargs="+", default=None, metavar="PATTERN",
                   help="metrics to summarise, as fnmatch patterns (default: 'env/*' reward_mean)")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the summary as JSON here (default: not "
                                                                "written)")
    return p


def main(argv=None) -> int:
    """Runs the CLI; returns the exit code (0 done, 2 bad input)."""
    args = build_parser().parse_args(argv)
    from vlmrm_jax.eval.training_summary import DEFAULT_PATTERNS, format_summary, summarize_training
    from vlmrm_jax.rl.trainer import METRICS_FILE, read_metrics

    def work():
        path = Path(args.run) / METRICS_FILE
        if not path.is_file():
            raise VlmrmError(f"{path} does not exist; pass --run the --out directory of a training run "
                             "(it writes metrics.jsonl from its first iteration on)")
        summary = summarize_training(read_metrics(args.run), num_parts=args.parts, patterns=args.keys or DEFAULT_PATTERNS)
        print(format_summary(summary))
        if args.json:
            Path(args.json).write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
            print(f"wrote {args.json}")

    return run_cli(work)


if __name__ == "__main__":
    sys.exit(main())
