"""Evaluate a saved VLM-RM run: roll out its policy, re-render a video, print the mean reward and success rates.

    python -m experiments.evaluate --run runs/humanoid

Loads the run's config.json and latest checkpoint, rolls out --episodes full episodes with the deterministic policy,
writes rollout_eval.mp4 (per-frame VLM reward drawn on it) and eval.json into the run directory. With
--save-states FILE it also writes the rollouts' physics states (qpos, qvel; MuJoCo envs), which
`make_vlm_dataset --policy-states FILE` renders and labels by the ground-truth predicates to retrain the reward model
on the states the policy visits (docs/humanoid_setup.md).
"""

from __future__ import annotations

import argparse
import sys

from experiments import run_cli


def build_parser() -> argparse.ArgumentParser:
    """The flags; every flag's help states its default."""
    p = argparse.ArgumentParser(prog="python -m experiments.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, metavar="DIR", help="the --out directory of a training run (required, "
                                                               "no default)")
    p.add_argument("--episodes", type=int, default=None, metavar="N",
                   help="episodes to roll out (default: the run's --eval-episodes)")
    p.add_argument("--seed", type=int, default=1, help="PRNG seed of the rollouts (default: %(default)s; training "
                                                       "evaluated with seed 1 too)")
    p.add_argument("--save-states", metavar="FILE", default=None,
                   help="also write the rollouts' physics states (qpos, qvel) to this .npz (default: not written)")
    return p


def main(argv=None) -> int:
    """Runs the CLI; returns the exit code (0 done, 2 bad input)."""
    args = build_parser().parse_args(argv)
    from vlmrm_jax.pipeline import evaluate_run

    def work():
        summary = evaluate_run(args.run, episodes=args.episodes, seed=args.seed,
                               states_path=args.save_states)
        for k, v in summary.items():
            print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")

    return run_cli(work)


if __name__ == "__main__":
    sys.exit(main())
