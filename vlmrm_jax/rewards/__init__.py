"""VLM rewards: the goal-baseline projection reward of VLM-RM (Rocamonde et al. 2023)."""

from vlmrm_jax.rewards.vlm_reward import (
    GoalBaselineReward,
    check_alpha,
    check_prompts,
    normalize,
    projection_matrix,
)

__all__ = ["GoalBaselineReward", "check_alpha", "check_prompts", "normalize", "projection_matrix"]
