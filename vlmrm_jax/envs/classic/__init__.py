"""CartPole and MountainCar (VLM-RM, Rocamonde et al. 2023, section 4.2), one folder for everything about them.

- :mod:`~vlmrm_jax.envs.classic.env`: the gymnax-based envs with the paper's prompts (:class:`CartPole`,
  :class:`MountainCar`);
- :mod:`~vlmrm_jax.envs.classic.render`: their JAX 2-D renderers (gym's look; MountainCar's textured look);
- :mod:`~vlmrm_jax.envs.classic.captions`: the caption sources of in-domain CLIP training;
- :mod:`~vlmrm_jax.envs.classic.landscape`: the reward-landscape sweeps (swept state variables, true rewards).
"""

from vlmrm_jax.envs.classic.env import (CARTPOLE_BASELINE_PROMPT, CARTPOLE_PROMPT, EPISODE_LENGTH,
                                        MOUNTAIN_CAR_BASELINE_PROMPT, MOUNTAIN_CAR_PROMPT, CartPole, MountainCar,
                                        MountainCarState)

__all__ = ["CARTPOLE_BASELINE_PROMPT", "CARTPOLE_PROMPT", "EPISODE_LENGTH", "MOUNTAIN_CAR_BASELINE_PROMPT",
           "MOUNTAIN_CAR_PROMPT", "CartPole", "MountainCar", "MountainCarState"]
