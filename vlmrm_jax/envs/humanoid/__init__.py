"""The MuJoCo humanoid family (VLM-RM, Rocamonde et al. 2023, section 4.4), one folder for everything about its world.

- :mod:`~vlmrm_jax.envs.humanoid.env`: the MJX env with the paper's set-up (:class:`Humanoid`);
- :mod:`~vlmrm_jax.envs.humanoid.camera`: the tracking camera and the authors' fixed one;
- :mod:`~vlmrm_jax.envs.humanoid.look`: brax's scene or VLM-RM's textured one (project-made textures in ``assets/``);
- :mod:`~vlmrm_jax.envs.humanoid.predicates`: ground-truth pose predicates (success without people);
- :mod:`~vlmrm_jax.envs.humanoid.reference_poses`: hand-built poses the predicates are checked against;
- :mod:`~vlmrm_jax.envs.humanoid.captions`: the caption source of in-domain CLIP training.
"""

from vlmrm_jax.envs.humanoid.env import BASELINE_PROMPT, EPISODE_LENGTH, Humanoid

__all__ = ["BASELINE_PROMPT", "EPISODE_LENGTH", "Humanoid"]
