"""CartPole and continuous MountainCar with VLM-RM's set-up (Rocamonde et al. 2023, section 4.2), as brax envs.

The dynamics are gymnax's JAX ports of gym's CartPole-v1 and MountainCarContinuous-v0, with the changes the authors
made for the paper (their ``CLIPRewardedCartPoleEnv`` / ``CLIPRewardedContinuousMountainCarEnv``):

* no termination: an episode runs for a fixed number of env steps (the authors' configs: 200), which brax's
  ``EpisodeWrapper`` enforces in training (``done`` is always 0 here);
* CartPole: after each step the pole angle is wrapped to [-pi, pi) and the cart position clipped to [-2.4, 2.4];
* MountainCar: once the car has reached the flag (position >= 0.45) its position is clipped to at most 0.45 for the
  rest of the episode, and the success flag stays set.

Both are ``brax.envs.base.Env`` s, so the VLM reward wrapper and PPO train them like the humanoid. The gymnax state
is the brax ``State.pipeline_state`` (the training stack's auto-reset,
:class:`~vlmrm_jax.envs.wrappers.FreshResetWrapper`, replaces ``pipeline_state`` and ``obs`` with a fresh reset's,
which is what makes an auto-reset reset the task), ``state.reward`` is the true task reward and ``state.metrics``
holds the true success criterion (``success``) and the true reward (``true_reward``), float32 each.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from brax.envs.base import Env, State
from flax import struct
from gymnax.environments.classic_control import cartpole as gx_cartpole
from gymnax.environments.classic_control import continuous_mountain_car as gx_mountain_car

from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.eval.success import episode_success, reached_at_any_step
from vlmrm_jax.envs.classic.render import MOUNTAIN_CAR_LOOKS, make_cartpole_renderer, make_mountain_car_renderer

#: The authors' episode length for CartPole and MountainCar (configs/cartpole.yaml, configs/mountain_car.yaml), in
#: env steps.
EPISODE_LENGTH = 200
#: The paper's prompts (section 4.2).
CARTPOLE_PROMPT = "pole vertically upright on top of the cart"
CARTPOLE_BASELINE_PROMPT = "pole and cart"
MOUNTAIN_CAR_PROMPT = "a car at the peak of the mountain, next to the yellow flag"
MOUNTAIN_CAR_BASELINE_PROMPT = "a car in the mountain"

_ZERO = jnp.zeros((), jnp.float32)


class _ClassicEnv(Env):
    """Shared parts of the two tasks: brax's abstract properties and the per-step metrics for logging."""

    @property
    def backend(self) -> str:
        """"gymnax": no brax physics pipeline is involved."""
        return "gymnax"

    @property
    def observation_size(self) -> int:
        """Length of the observation vector: 4 (CartPole), 2 (MountainCar)."""
        return self._observation_size

    @property
    def action_size(self) -> int:
        """1: one continuous action in [-1, 1]."""
        return 1

    def step_metrics_fn(self) -> Callable[[State], dict[str, jax.Array]]:
        """``State -> {"success", "true_reward"}`` (float32 [] each) for ONE state, logged next to the VLM reward."""
        return lambda state: {"success": state.metrics["success"], "true_reward": state.metrics["true_reward"]}

    def task_metric(self, prompts: Sequence[str]) -> str:
        """"success": the true task criterion, whatever the prompts."""
        del prompts
        return "success"

    def episode_success(self, holds: jax.Array) -> jax.Array:
        """VLM-RM's criterion: the task criterion holds on at least 50% of the steps; bool [T, B] -> bool [B]."""
        return episode_success(holds)

    def _state(self, env_state, obs: jax.Array, reward: jax.Array, success: jax.Array,
               info: dict | None = None) -> State:
        """A brax State; ``info`` is carried over from the previous state on steps (wrappers keep theirs there)."""
        reward = jnp.asarray(reward, jnp.float32)
        metrics = {"success": jnp.asarray(success, jnp.float32), "true_reward": reward}
        return State(pipeline_state=env_state, obs=obs.astype(jnp.float32), reward=reward, done=_ZERO,
                     metrics=metrics, info={} if info is None else info)


class CartPole(_ClassicEnv):
    """CartPole-v1 (gymnax's port of gym's Euler-integrated dynamics, 0.02 s per step), never terminating.

    Observations: float32 [4], (cart position m, cart velocity m/s, pole angle rad in [-pi, pi), pole angular
    velocity rad/s). Actions: float32 [1] in [-1, 1], mapped to gym's discrete push: ``action > 0`` pushes right
    (+10 N), otherwise left (-10 N); PPO's continuous policy therefore drives the discrete task unchanged.
    Reward (the true task reward): 1 while the pole is upright, else 0; ``metrics["success"]`` is the same
    criterion: |angle| < 12 degrees and |position| < 2.4 m (gym's termination test, strict).
    ``pipeline_state`` is gymnax's ``EnvState`` (x, x_dot, theta, theta_dot, time).

    Args:
        params: gymnax's ``EnvParams`` for CartPole; default gym's constants.
    """

    _observation_size = 4

    def __init__(self, params: gx_cartpole.EnvParams | None = None):
        self._gymnax = gx_cartpole.CartPole()
        self.params = params if params is not None else self._gymnax.default_params

    def upright(self, env_state: gx_cartpole.EnvState) -> jax.Array:
        """The success criterion, bool []: |theta| < 12 degrees and |x| < 2.4 m."""
        p = self.params
        return (jnp.abs(env_state.theta) < p.theta_threshold_radians) & (jnp.abs(env_state.x) < p.x_threshold)

    def _finish(self, env_state: gx_cartpole.EnvState, info: dict | None = None) -> State:
        upright = self.upright(env_state)
        return self._state(env_state, self._gymnax.get_obs(env_state), upright, upright, info)

    def reset(self, rng: jax.Array) -> State:
        """gym's reset: all four state variables uniform in [-0.05, 0.05]."""
        _, env_state = self._gymnax.reset_env(rng, self.params)
        return self._finish(env_state.replace(time=jnp.zeros((), jnp.int32)))

    def step(self, state: State, action: jax.Array) -> State:
        """One gym step with the discrete push ``action[0] > 0``, then the angle wrap and position clip."""
        push = (action[0] > 0).astype(jnp.int32)
        _, env_state, _, _, _ = self._gymnax.step_env(jax.random.PRNGKey(0), state.pipeline_state, push, self.params)
        env_state = env_state.replace(theta=(env_state.theta + jnp.pi) % (2 * jnp.pi) - jnp.pi,
                                      x=jnp.clip(env_state.x, -self.params.x_threshold, self.params.x_threshold))
        return self._finish(env_state, state.info)

    def make_render_fn(self, width: int, height: int, *, shadows: bool = False,
                       supersample: int = 2) -> Callable[[State], jax.Array]:
        """A jittable renderer in the flat look of gym's CartPole (see
        :func:`vlmrm_jax.envs.classic.render.make_cartpole_renderer`).

        Args:
            width, height: image size in pixels.
            shadows: no effect (a flat 2-D drawing); accepted so that every env shares this signature.
            supersample: sample points per pixel along each axis.

        Returns:
            ``render(state) -> float32 [height, width, 3]`` in [0, 1] for one (unbatched) state.

        Raises:
            VlmrmError: on a non-positive size.
        """
        del shadows
        render = make_cartpole_renderer(width, height, supersample=supersample)
        return lambda state: render(state.pipeline_state.x, state.pipeline_state.theta)


@struct.dataclass
class MountainCarState(gx_mountain_car.EnvState):
    """gymnax's MountainCar state (position, velocity, time) plus ``reached_flag`` (bool []: the car has reached the
    goal position during this episode)."""

    reached_flag: jax.Array


class MountainCar(_ClassicEnv):
    """MountainCarContinuous-v0 (gym's dynamics), never terminating, rendered in the flat or the textured look.

    Observations: float32 [2], (position in [-1.2, 0.6], velocity in [-0.07, 0.07]), world units. Actions: float32
    [1], the engine force, clipped to [-1, 1]. Reward (the true task reward, gym's): 100 when the car is at the flag
    (position >= 0.45) with non-negative velocity, minus 0.1 * action^2. ``metrics["success"]``: the car has reached
    the flag during the episode (position >= 0.45 once; the authors' success flag). ``pipeline_state`` is a
    :class:`MountainCarState`.

    The step follows gym, not gymnax: gymnax 1.0.1 zeroes a negative velocity when ``position >= goal_position``
    where gym zeroes it when the car hits the left wall (``position == min_position``); that changes episodes once
    termination is removed.

    Args:
        look: "textured" (the paper's realistic rendering, with which CLIP works) or "flat" (gym's look, with which
            the paper found CLIP fails).
        params: gymnax's ``EnvParams`` for the continuous MountainCar; default gym's constants.

    Raises:
        VlmrmError: on an unknown look.
    """

    _observation_size = 2

    def __init__(self, look: str = "textured", params: gx_mountain_car.EnvParams | None = None):
        if look not in MOUNTAIN_CAR_LOOKS:
            raise VlmrmError(f"look={look!r} is not a MountainCar look; choose one of {', '.join(MOUNTAIN_CAR_LOOKS)}")
        self.look = look
        self._gymnax = gx_mountain_car.ContinuousMountainCar()
        self.params = params if params is not None else self._gymnax.default_params

    def reset(self, rng: jax.Array) -> State:
        """gym's reset: position uniform in [-0.6, -0.4], velocity 0."""
        _, env_state = self._gymnax.reset_env(rng, self.params)
        env_state = MountainCarState(position=env_state.position.astype(jnp.float32), velocity=_ZERO,
                                     time=jnp.zeros((), jnp.int32), reached_flag=jnp.zeros((), bool))
        return self._state(env_state, self._gymnax.get_obs(env_state), _ZERO, env_state.reached_flag)

    def step(self, state: State, action: jax.Array) -> State:
        """gym's ``Continuous_MountainCarEnv.step``, then the authors' clip at the flag once it has been reached."""
        p = self.params
        s = state.pipeline_state
        force = jnp.clip(action[0], p.min_action, p.max_action)
        velocity = s.velocity + force * p.power - jnp.cos(3 * s.position) * p.gravity
        velocity = jnp.clip(velocity, -p.max_speed, p.max_speed)
        position = jnp.clip(s.position + velocity, p.min_position, p.max_position)
        velocity = jnp.where((position == p.min_position) & (velocity < 0), 0.0, velocity)
        at_goal = (position >= p.goal_position) & (velocity >= p.goal_velocity)
        reward = 100.0 * at_goal - 0.1 * action[0] ** 2
        reached_flag = s.reached_flag | (position >= p.goal_position)
        position = jnp.where(reached_flag, jnp.minimum(position, p.goal_position), position)
        env_state = MountainCarState(position=position, velocity=velocity, time=s.time + 1, reached_flag=reached_flag)
        return self._state(env_state, self._gymnax.get_obs(env_state), reward, reached_flag, state.info)

    def episode_success(self, holds: jax.Array) -> jax.Array:
        """The car reached the flag at some step (``metrics["success"]`` latches); bool [T, B] -> bool [B]."""
        return reached_at_any_step(holds)

    def make_render_fn(self, width: int, height: int, *, shadows: bool = False,
                       supersample: int = 2) -> Callable[[State], jax.Array]:
        """A jittable renderer in this env's look (see :func:`vlmrm_jax.envs.classic.render.make_mountain_car_renderer`).

        Args:
            width, height: image size in pixels.
            shadows: no effect (a flat 2-D drawing); accepted so that every env shares this signature.
            supersample: sample points per pixel along each axis.

        Returns:
            ``render(state) -> float32 [height, width, 3]`` in [0, 1] for one (unbatched) state.

        Raises:
            VlmrmError: on a non-positive size, or missing pictures for the textured look.
        """
        del shadows
        render = make_mountain_car_renderer(width, height, look=self.look, supersample=supersample)
        return lambda state: render(state.pipeline_state.position)
