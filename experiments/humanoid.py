"""Train the MJX humanoid with PPO where the only reward is CLIP's judgement of rendered frames (VLM-RM).

    python -m experiments.humanoid --prompt "a humanoid robot kneeling"

Physics (MJX), ray-cast rendering, CLIP preprocessing and embedding, the goal-baseline reward and the PPO update run
inside one jitted program on JAX's default device. Frames show the authors' scene through their camera by default
(``--look paper --camera paper``; ``--look brax --camera tracking`` is brax's look through a camera that tracks the
torso; docs/humanoid_setup.md). Writes config.json, metrics.jsonl, checkpoints/, reward_curve.png, policy/,
rollout.mp4 and eval.json into --out. A killed run continues with --resume.
"""

from __future__ import annotations

import argparse
import sys

from experiments import training_cli
from vlmrm_jax.envs.humanoid import BASELINE_PROMPT, EPISODE_LENGTH
from vlmrm_jax.envs.humanoid.camera import CAMERAS
from vlmrm_jax.envs.humanoid.look import LOOKS
from vlmrm_jax.errors import VlmrmError

#: Sizes per device kind. "cpu" finishes in about 7 minutes (10 in brax's look: its ``minutes``) on an idle 2-core
#: machine with the shipped small CLIP at 64 px (which the cpu preset picks unless --model is given; a run warns
#: when its measured ETA is far beyond that): 64 envs and 409,600 env steps at ~1,350 env steps/s in the authors'
#: scene, ~880 in brax's look (2026-12-04; until then 16 envs and 40,960 steps in 15 minutes, before the renderer
#: was fast); another idle 2-core machine gave ~460-510 env steps/s (15-16 minutes, 2026-12-07). At it, in the
#: authors' look and camera, "a humanoid robot standing up" succeeds in 27 of 64 evaluation episodes over 4 seeds
#: (16/16 in one), and kneeling in more than half the evaluation episodes in 2 of 13 runs (seeds 0-9 on two machines;
#: docs/humanoid_setup.md). "accelerator" is
#: paper-like (VLM-RM trained 10M steps with 32 envs; PPO here uses many more parallel envs).
#: Learner: PPO. At the earlier cpu preset's 40,960 env steps (kneeling, one seed each, docs/humanoid_setup.md) neither
#: PPO nor SAC (--learner sac) succeeded (0 of 16 evaluation episodes); PPO raised the CLIP reward it optimises (0.13 ->
#: 0.18 over training, eval 0.17) while SAC's stayed flat (0.13, eval 0.12), though SAC knelt on more steps (5.8% of
#: evaluation steps against 2.4%) and fell more (48% against 15%). No evidence that SAC learns faster here.
PRESETS = {
    "cpu": dict(total_steps=409_600, minutes=10, ppo=dict(num_envs=64, unroll_length=16, batch_size=64,
                                                          num_minibatches=4, num_updates_per_batch=4)),
    "accelerator": dict(total_steps=10_000_000, ppo=dict(num_envs=256, unroll_length=20, batch_size=256,
                                                         num_minibatches=8, num_updates_per_batch=4)),
}

#: Which shipped CLIP the cpu preset picks for which look and camera, for --help.
_IN_DOMAIN = ("without --model the cpu preset picks the shipped CLIP trained on the same look and camera: "
              "humanoid-clip-tiny-paper for paper + paper, humanoid-clip-tiny for brax + tracking; other pairs need "
              "--model")


def add_env_arguments(group: argparse._ArgumentGroup) -> None:
    """Adds ``--look brax|paper`` and ``--camera tracking|paper|oblique`` (docs/humanoid_setup.md)."""
    group.add_argument("--look", default="paper",
                       help="scene look: 'brax' (brax's MJCF) or 'paper' (VLM-RM's sky box, tiled floor, textured "
                            f"body); {_IN_DOMAIN} (default: %(default)s)")
    group.add_argument("--camera", default="paper",
                       help="camera: 'tracking' (follows the torso), 'paper' (the authors' camera as their code "
                            "rendered it: fixed, looking at (0, 0, 1) m) or 'oblique' (follows the torso from closer, "
                            "at 45 deg to the front); a CLIP judges frames best from the look and camera it "
                            "was trained on, see --look (default: %(default)s)")


def env_options(args: argparse.Namespace) -> dict:
    """``{"look": args.look, "camera": args.camera}``: the humanoid's keyword options (``Humanoid(look=, camera=)``).

    Raises:
        VlmrmError: on an unknown look or camera (checked here, before the run directory or the model is touched).
    """
    if args.look not in LOOKS:
        raise VlmrmError(f"--look {args.look!r} is not a humanoid look; choose one of {', '.join(LOOKS)}")
    if args.camera not in CAMERAS:
        raise VlmrmError(f"--camera {args.camera!r} is not a humanoid camera; choose one of {', '.join(CAMERAS)}")
    return {"look": args.look, "camera": args.camera}


TASK = training_cli.Task(env="humanoid", prompt="a humanoid robot kneeling", baseline_prompt=BASELINE_PROMPT,
                         episode_length=EPISODE_LENGTH, presets=PRESETS, description=__doc__,
                         add_env_arguments=add_env_arguments, env_options=env_options)


def main(argv=None) -> int:
    """Runs the CLI; returns the exit code."""
    return training_cli.main(TASK, argv)


if __name__ == "__main__":
    sys.exit(main())
