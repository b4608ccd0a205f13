"""Train the MJX humanoid with PPO where the only reward is CLIP's judgement of rendered frames (VLM-RM).

    python -m experiments.humanoid --prompt "a humanoid robot kneeling"

Physics (MJX), ray-cast rendering, CLIP preprocessing and embedding, the goal-baseline reward and the PPO update run
inside one jitted program on JAX's default device. Writes config.json, metrics.jsonl, checkpoints/, reward_curve.png,
policy/, rollout.mp4 and eval.json into --out. A killed run continues with --resume.
"""

from __future__ import annotations

import sys

from experiments import training_cli
from vlmrm_jax.envs.humanoid import BASELINE_PROMPT, EPISODE_LENGTH

#: Sizes per device kind. "cpu" finishes in about 15 minutes on a 2-core machine with the shipped small CLIP at 64 px
#: (which the cpu preset picks unless --model is given; a run warns when its measured ETA is far beyond that);
#: "accelerator" is paper-like (VLM-RM trained 10M steps with 32 envs; PPO here uses many more parallel envs).
PRESETS = {
    "cpu": dict(total_steps=40_960, minutes=15, ppo=dict(num_envs=16, unroll_length=16, batch_size=16,
                                                         num_minibatches=4, num_updates_per_batch=4)),
    "accelerator": dict(total_steps=10_000_000, ppo=dict(num_envs=256, unroll_length=20, batch_size=256,
                                                         num_minibatches=8, num_updates_per_batch=4)),
}

TASK = training_cli.Task(env="humanoid", prompt="a humanoid robot kneeling", baseline_prompt=BASELINE_PROMPT,
                         episode_length=EPISODE_LENGTH, presets=PRESETS, description=__doc__)


def main(argv=None) -> int:
    """Runs the CLI; returns the exit code."""
    return training_cli.main(TASK, argv)


if __name__ == "__main__":
    sys.exit(main())
