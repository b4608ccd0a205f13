"""How CartPole and MountainCar are swept for reward landscapes (VLM-RM, Rocamonde et al. 2023, section 4.2).

The generic machinery (grids, one jitted render-embed-score pass, EPIC per alpha) is :mod:`vlmrm_jax.eval.landscape`;
this module says what to sweep per env and what the true reward is.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from vlmrm_jax.envs.classic.env import (CARTPOLE_BASELINE_PROMPT, CARTPOLE_PROMPT, MOUNTAIN_CAR_BASELINE_PROMPT,
                                        MOUNTAIN_CAR_PROMPT)
from vlmrm_jax.envs.classic.render import CARTPOLE_X_THRESHOLD, MOUNTAIN_CAR_MAX_POSITION, MOUNTAIN_CAR_MIN_POSITION
from vlmrm_jax.eval.landscape import LandscapeTask, SweepAxis


def _cartpole_state(env, template, values):
    return template.replace(x=values[0], x_dot=jnp.zeros_like(values[0]), theta=values[1],
                            theta_dot=jnp.zeros_like(values[1]))


def _cartpole_true_reward(env, state, action):
    del action
    return env.upright(state).astype(jnp.float32)


def _mountain_car_state(env, template, values):
    goal = env.params.goal_position
    return template.replace(position=values[0], velocity=jnp.zeros_like(values[0]),
                            reached_flag=values[0] >= goal)


def _mountain_car_true_reward(env, state, action):
    # The reward of MountainCar.step (gym's MountainCarContinuous-v0) for arriving in ``state`` with ``action``.
    p = env.params
    at_goal = (state.position >= p.goal_position) & (state.velocity >= p.goal_velocity)
    return 100.0 * at_goal.astype(jnp.float32) - 0.1 * action[0] ** 2


#: CartPole's sweep: cart position over the track, pole angle over the full circle.
CARTPOLE_LANDSCAPE = LandscapeTask(
    "cartpole", (SweepAxis("cart_position", -CARTPOLE_X_THRESHOLD, CARTPOLE_X_THRESHOLD, 25, "m"),
                 SweepAxis("pole_angle", -math.pi, math.pi, 73, "rad")),
    CARTPOLE_PROMPT, CARTPOLE_BASELINE_PROMPT, _cartpole_state, _cartpole_true_reward)

#: MountainCar's sweep: the car position over the track.
MOUNTAIN_CAR_LANDSCAPE = LandscapeTask(
    "mountain_car", (SweepAxis("position", MOUNTAIN_CAR_MIN_POSITION, MOUNTAIN_CAR_MAX_POSITION, 181, "world units"),),
    MOUNTAIN_CAR_PROMPT, MOUNTAIN_CAR_BASELINE_PROMPT, _mountain_car_state, _mountain_car_true_reward)
