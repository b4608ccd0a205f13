"""vlmrm-jax: reinforcement learning from natural language, JAX-native end to end.

Packages, one concern each:

- :mod:`vlmrm_jax.envs`: MJX/JAX environments (humanoid, ...) and the VLM reward wrapper.
- :mod:`vlmrm_jax.render`: batched ray-cast RGB and segmentation rendering of MJX scenes under ``jit``.
- :mod:`vlmrm_jax.models`: Flax CLIP loading, JAX image preprocessing, small offline models.
- :mod:`vlmrm_jax.rewards`: the VLM-RM goal-baseline projection reward (Rocamonde et al. 2023).
- :mod:`vlmrm_jax.rl`: PPO built from brax's components, with orbax checkpoints and resume.
- :mod:`vlmrm_jax.eval`: rollouts, success predicates, videos and plots.
"""

__version__ = "0.1.0"
