"""The language-centred agent (Di Palo et al. 2023): a Transformer policy trained by collect & infer.

- :mod:`~vlmrm_jax.agent.policy`: the Transformer policy, its action heads, exploration and behaviour-cloning loss;
- :mod:`~vlmrm_jax.agent.buffer`: the on-device buffer of qualifying episodes (flashbax);
- :mod:`~vlmrm_jax.agent.collect_infer`: collect & infer as jittable ``init`` / ``iteration`` (and the
  sparse-reward baseline).

Generic: the env, the subgoal captions' embeddings, the plan (ids into the captions) and the detector are passed
in; nothing here imports an env family.
"""

from vlmrm_jax.agent.buffer import EpisodeBuffer
from vlmrm_jax.agent.collect_infer import (CollectInfer, CollectInferConfig, CollectInferState, Trajectory,
                                           stored_mask)
from vlmrm_jax.agent.policy import PolicyConfig, TransformerPolicy, act, action_cell, bc_loss, cell_centres

__all__ = ["CollectInfer", "CollectInferConfig", "CollectInferState", "EpisodeBuffer", "PolicyConfig",
           "Trajectory", "TransformerPolicy", "act", "action_cell", "bc_loss", "cell_centres", "stored_mask"]
