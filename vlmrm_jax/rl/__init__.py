"""Reinforcement learning: PPO and SAC from brax's components, sweeps of PPO runs, checkpoints and the training loop."""

from vlmrm_jax.rl.checkpoint import Checkpoints
from vlmrm_jax.rl.ppo import PPO, PPOConfig, TrainState, make_policy_fn
from vlmrm_jax.rl.sac import SAC, SACConfig, SACTrainState
from vlmrm_jax.rl.sweep import SweepPPO, SweepState
from vlmrm_jax.rl.trainer import read_metrics, train, trained_steps

__all__ = ["Checkpoints", "PPO", "PPOConfig", "SAC", "SACConfig", "SACTrainState", "SweepPPO", "SweepState",
           "TrainState", "make_policy_fn",
           "read_metrics", "train", "trained_steps"]
