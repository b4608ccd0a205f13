"""Reinforcement learning: PPO and SAC from brax's components, checkpoints and the training loop."""

from vlmrm_jax.rl.checkpoint import Checkpoints
from vlmrm_jax.rl.ppo import PPO, PPOConfig, TrainState, make_policy_fn
from vlmrm_jax.rl.sac import SAC, SACConfig, SACTrainState
from vlmrm_jax.rl.trainer import read_metrics, train

__all__ = ["Checkpoints", "PPO", "PPOConfig", "SAC", "SACConfig", "SACTrainState", "TrainState", "make_policy_fn",
           "read_metrics", "train"]
