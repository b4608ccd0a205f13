"""The subgoal planner of Di Palo et al. 2023: a T5 (e.g. FLAN-T5) splits an instruction into subgoal captions.

- :class:`SubgoalPlanner`: load by shipped name, directory or hub id; :meth:`~SubgoalPlanner.tokenize` once,
  :meth:`~SubgoalPlanner.plan_tokens` (pure, jittable: generation + parsing to subgoal ids) inside jitted loops,
  :meth:`~SubgoalPlanner.plan` on the host.
- :mod:`~vlmrm_jax.planner.t5`: the project's own Flax T5, reading Hugging Face T5 weights on jax 0.9 - 0.11.
- :mod:`~vlmrm_jax.planner.loading`: config, weights (Flax msgpack, safetensors, PyTorch) and tokenizer; saving.
- :mod:`~vlmrm_jax.planner.generation`: jitted greedy decoding with a key/value cache, and an eager reference.
- :mod:`~vlmrm_jax.planner.parsing`: the output grammar, read from tokens (on the device) or text (host).
- :mod:`~vlmrm_jax.planner.prompt`: prompt templates (``prompts/stacking.txt``: the paper's style of prompt).
- :mod:`~vlmrm_jax.planner.tokenizer`: SentencePiece T5 tokenizers built offline.
- :mod:`~vlmrm_jax.planner.training`: teacher-forced training of a small T5 from scratch.
- :mod:`~vlmrm_jax.planner.registry`: shipped planners by short name (``stacking-t5-tiny``).
"""

from vlmrm_jax.planner.parsing import NO_SUBGOAL, format_subgoals, parse_text, parse_tokens
from vlmrm_jax.planner.planner import DEFAULT_PLANNER, PlanResult, SubgoalPlan, SubgoalPlanner
from vlmrm_jax.planner.registry import PLANNER_MODELS
from vlmrm_jax.planner.t5 import T5, T5Architecture

__all__ = ["DEFAULT_PLANNER", "NO_SUBGOAL", "PLANNER_MODELS", "PlanResult", "SubgoalPlan", "SubgoalPlanner", "T5",
           "T5Architecture", "format_subgoals", "parse_text", "parse_tokens"]
