"""The language-centred agent (Di Palo et al. 2023): a Transformer policy trained by collect & infer.

- :mod:`~vlmrm_jax.agent.policy`: the Transformer policy, its action heads, exploration and behaviour-cloning loss;
- :mod:`~vlmrm_jax.agent.buffer`: the on-device buffer of qualifying episodes (flashbax);
- :mod:`~vlmrm_jax.agent.collect_infer`: collect & infer as jittable ``init`` / ``iteration`` (and the
  sparse-reward baseline);
- :mod:`~vlmrm_jax.agent.subgoal_reward`: the same tasks the VLM-RM way: PPO on the projection reward toward the
  current subgoal's caption, subgoals advancing on detection;
- :mod:`~vlmrm_jax.agent.outputs`: greedy evaluation, success-rate curve, episode video.

Generic: the env, the subgoal captions' embeddings, the plan (ids into the captions) and the detector are passed
in; nothing here imports an env family.
"""

from vlmrm_jax.agent.buffer import EpisodeBuffer
from vlmrm_jax.agent.collect_infer import (CollectInfer, CollectInferConfig, CollectInferState, Trajectory,
                                           stored_mask)
from vlmrm_jax.agent.policy import PolicyConfig, TransformerPolicy, act, action_cell, bc_loss, cell_centres
from vlmrm_jax.agent.subgoal_reward import SubgoalPPO, SubgoalRewardEnv, ppo_rollout, stack_rewards

__all__ = ["CollectInfer", "CollectInferConfig", "CollectInferState", "EpisodeBuffer", "PolicyConfig",
           "SubgoalPPO", "SubgoalRewardEnv", "Trajectory", "TransformerPolicy", "act", "action_cell", "bc_loss",
           "cell_centres", "ppo_rollout", "stack_rewards", "stored_mask"]
