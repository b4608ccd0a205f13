"""Auto-labelled CartPole and MountainCar frames, captioned from the true state.

The paper's prompts (Rocamonde et al. 2023, section 4.2) are the goal and baseline captions; further concepts
(the pole leaning or fallen, where the cart or car is) give the contrastive training negatives with meaning. States
are drawn directly (both tasks are fully described by one or two numbers), rendered by the env's own
``make_render_fn`` and labelled by the thresholds below. MountainCar frames are rendered in both looks
(:data:`~vlmrm_jax.envs.classic.render.MOUNTAIN_CAR_LOOKS`), so one model serves ``MountainCar(look="flat")`` and
``MountainCar(look="textured")``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vlmrm_jax.datasets.base import FrameBatch
from vlmrm_jax.datasets.captions import CaptionSet, Concept
from vlmrm_jax.envs.classic.env import (CARTPOLE_BASELINE_PROMPT, CARTPOLE_PROMPT, MOUNTAIN_CAR_BASELINE_PROMPT,
                                    MOUNTAIN_CAR_PROMPT, CartPole, MountainCar, MountainCarState)
from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.render import to_uint8
from vlmrm_jax.envs.classic.render import (CARTPOLE_X_THRESHOLD, MOUNTAIN_CAR_GOAL_POSITION, MOUNTAIN_CAR_LOOKS,
                                      MOUNTAIN_CAR_MIN_POSITION)

#: CartPole's success angle (gym's termination test: |theta| < 12 deg), radians.
UPRIGHT_ANGLE = math.radians(12.0)
#: The pole counts as fallen (lying sideways or hanging down) beyond this angle, radians.
FALLEN_ANGLE = math.radians(60.0)
#: The cart is on the left (right) part of the track beyond this distance from the centre, metres.
CART_SIDE_X = 0.8
#: The cart is near the centre within this distance, metres.
CART_CENTRE_X = 0.4

#: The valley floor of MountainCar's track ``sin(3 x)``: x = -pi / 6.
VALLEY_POSITION = -math.pi / 6
#: The car is at the bottom of the valley within this distance of it (world units).
VALLEY_HALF_WIDTH = 0.15
#: The car is high on the left hill below this position.
LEFT_HILL_POSITION = -0.9

CARTPOLE_CAPTIONS = CaptionSet(concepts=(
    Concept("upright", (CARTPOLE_PROMPT, "the pole balanced upright on the cart", "a cart with an upright pole"),
            CARTPOLE_PROMPT),
    Concept("leaning_left", ("the pole leaning to the left", "a cart with its pole tilted left")),
    Concept("leaning_right", ("the pole leaning to the right", "a cart with its pole tilted right")),
    Concept("fallen", ("the pole has fallen over", "a cart with a fallen pole", "the pole lying down or hanging")),
    Concept("cart_left", ("the cart on the left side of the track", "a cart at the left")),
    Concept("cart_right", ("the cart on the right side of the track", "a cart at the right")),
    Concept("cart_centre", ("the cart in the middle of the track", "a cart at the centre")),
    Concept("cartpole", (CARTPOLE_BASELINE_PROMPT, "a cart and a pole")),
), baseline="cartpole")

MOUNTAIN_CAR_CAPTIONS = CaptionSet(concepts=(
    Concept("at_flag", (MOUNTAIN_CAR_PROMPT, "a car next to the yellow flag", "a car that has reached the flag on "
                        "the mountain top"), MOUNTAIN_CAR_PROMPT),
    Concept("valley", ("a car at the bottom of the valley", "a car down in the valley")),
    Concept("left_hill", ("a car high on the left slope", "a car up the left hill")),
    Concept("right_slope", ("a car climbing the right slope towards the flag", "a car on the right slope")),
    Concept("mountain_car", (MOUNTAIN_CAR_BASELINE_PROMPT, "a car on a hill")),
), baseline="mountain_car")


class _Frame(NamedTuple):
    """The one field of a brax ``State`` the env's render function reads."""

    pipeline_state: object


def cartpole_labels(x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Labels of :data:`CARTPOLE_CAPTIONS` from the state.

    Args:
        x: float [N], cart position in metres (track [-2.4, 2.4], positive right).
        theta: float [N], pole angle from upright in radians, wrapped to [-pi, pi), positive leaning right (+x).

    Returns:
        bool [N, 8]: upright (|theta| < 12 deg and |x| < 2.4, the env's success), leaning left / right
        (12 deg <= |theta| < 60 deg), fallen (|theta| >= 60 deg), cart left (x < -0.8), right (x > 0.8), centre
        (|x| < 0.4), and the baseline (always).
    """
    x, theta = np.asarray(x), np.asarray(theta)
    leaning = (np.abs(theta) >= UPRIGHT_ANGLE) & (np.abs(theta) < FALLEN_ANGLE)
    return np.stack([(np.abs(theta) < UPRIGHT_ANGLE) & (np.abs(x) < CARTPOLE_X_THRESHOLD), leaning & (theta < 0),
                     leaning & (theta > 0), np.abs(theta) >= FALLEN_ANGLE, x < -CART_SIDE_X, x > CART_SIDE_X,
                     np.abs(x) < CART_CENTRE_X, np.ones_like(x, bool)], axis=-1)


def mountain_car_labels(position: np.ndarray) -> np.ndarray:
    """Labels of :data:`MOUNTAIN_CAR_CAPTIONS` from the car position.

    Args:
        position: float [N], in [-1.2, 0.6] (world units).

    Returns:
        bool [N, 5]: at the flag (position >= 0.45, the env's success), in the valley (within 0.15 of -pi/6), high
        on the left hill (< -0.9), on the right slope (between the valley and the flag), and the baseline (always).
    """
    p = np.asarray(position)
    return np.stack([p >= MOUNTAIN_CAR_GOAL_POSITION, np.abs(p - VALLEY_POSITION) < VALLEY_HALF_WIDTH,
                     p < LEFT_HILL_POSITION, (p >= VALLEY_POSITION + VALLEY_HALF_WIDTH) &
                     (p < MOUNTAIN_CAR_GOAL_POSITION), np.ones_like(p, bool)], axis=-1)


def _check(num_frames: int, chunk_size: int) -> None:
    if num_frames <= 0 or chunk_size <= 0:
        raise VlmrmError(f"num_frames={num_frames}, chunk_size={chunk_size}: both must be positive")


class CartPoleSource:
    """CartPole frames in gym's flat look, the state drawn as: cart position uniform on the track; pole angle
    Gaussian around upright (sd 0.15 rad) for ``upright_fraction`` of the frames, else uniform in [-pi, pi).

    Args:
        image_size: frames are ``image_size`` x ``image_size`` pixels.
        upright_fraction: share of frames drawn near upright.

    Raises:
        VlmrmError: on a non-positive size or a fraction outside [0, 1].
    """

    env = "cartpole"
    captions = CARTPOLE_CAPTIONS
    state_names = ("x", "theta")
    modes = ("near_upright", "uniform")

    def __init__(self, image_size: int = 64, *, upright_fraction: float = 0.4):
        if image_size <= 0 or not 0.0 <= upright_fraction <= 1.0:
            raise VlmrmError(f"image_size={image_size}, upright_fraction={upright_fraction}: pass a positive size "
                             f"and a fraction in [0, 1]")
        self.image_size = int(image_size)
        self.upright_fraction = float(upright_fraction)
        render = CartPole().make_render_fn(self.image_size, self.image_size)
        self._render = jax.jit(jax.vmap(lambda x, theta: to_uint8(render(_Frame(_CartPoleState(x, theta))))))

    @property
    def config(self) -> dict:
        """The settings that, with a seed, reproduce the frames."""
        return {"image_size": self.image_size, "upright_fraction": self.upright_fraction}

    def generate(self, num_frames: int, seed: int, chunk_size: int = 256) -> Iterator[FrameBatch]:
        """Yields ``num_frames`` captioned frames in chunks of at most ``chunk_size``."""
        _check(num_frames, chunk_size)
        rng = np.random.default_rng(seed)
        modes = (rng.random(num_frames) >= self.upright_fraction).astype(np.int32)
        x = rng.uniform(-CARTPOLE_X_THRESHOLD, CARTPOLE_X_THRESHOLD, num_frames)
        theta = np.where(modes == 0, rng.normal(0.0, 0.15, num_frames), rng.uniform(-np.pi, np.pi, num_frames))
        theta = (theta + np.pi) % (2 * np.pi) - np.pi
        states = np.stack([x, theta], axis=-1).astype(np.float32)
        for start in range(0, num_frames, chunk_size):
            s = states[start:start + chunk_size]
            images = np.asarray(self._render(jnp.asarray(s[:, 0]), jnp.asarray(s[:, 1])))
            yield FrameBatch(images, cartpole_labels(s[:, 0], s[:, 1]), s, modes[start:start + chunk_size])


class _CartPoleState(NamedTuple):
    """The fields of gymnax's CartPole state that the renderer reads."""

    x: jax.Array
    theta: jax.Array


class MountainCarSource:
    """MountainCar frames in both looks (flat and textured, alternately drawn at random), the car position uniform
    in [-1.2, 0.5] for half of the frames and within 0.1 of the flag (0.45) for ``near_flag_fraction`` of them.

    Args:
        image_size: frames are ``image_size`` x ``image_size`` pixels.
        near_flag_fraction: share of frames drawn near the flag.
        looks: the looks to render (a subset of ``("flat", "textured")``).

    Raises:
        VlmrmError: on a non-positive size, a fraction outside [0, 1] or an unknown look.
    """

    env = "mountain_car"
    captions = MOUNTAIN_CAR_CAPTIONS
    state_names = ("position", "look")
    modes = ("uniform", "near_flag")

    def __init__(self, image_size: int = 64, *, near_flag_fraction: float = 0.3,
                 looks: tuple[str, ...] = MOUNTAIN_CAR_LOOKS):
        if image_size <= 0 or not 0.0 <= near_flag_fraction <= 1.0:
            raise VlmrmError(f"image_size={image_size}, near_flag_fraction={near_flag_fraction}: pass a positive "
                             f"size and a fraction in [0, 1]")
        self.image_size = int(image_size)
        self.near_flag_fraction = float(near_flag_fraction)
        self.looks = tuple(looks)
        self._renders = []
        for look in self.looks:  # MountainCar raises VlmrmError on an unknown look
            render = MountainCar(look=look).make_render_fn(self.image_size, self.image_size)
            self._renders.append(jax.jit(jax.vmap(lambda p, render=render: to_uint8(render(_Frame(
                MountainCarState(position=p, velocity=jnp.zeros_like(p), time=jnp.zeros((), jnp.int32),
                                 reached_flag=jnp.zeros((), bool))))))))

    @property
    def config(self) -> dict:
        """The settings that, with a seed, reproduce the frames."""
        return {"image_size": self.image_size, "near_flag_fraction": self.near_flag_fraction,
                "looks": list(self.looks)}

    def generate(self, num_frames: int, seed: int, chunk_size: int = 256) -> Iterator[FrameBatch]:
        """Yields ``num_frames`` captioned frames in chunks of at most ``chunk_size``; ``states[:, 1]`` is the index
        of the look in ``looks``."""
        _check(num_frames, chunk_size)
        rng = np.random.default_rng(seed)
        modes = (rng.random(num_frames) < self.near_flag_fraction).astype(np.int32)
        goal = MOUNTAIN_CAR_GOAL_POSITION
        position = np.where(modes == 1, rng.uniform(goal - 0.1, goal + 0.05, num_frames),
                            rng.uniform(MOUNTAIN_CAR_MIN_POSITION, goal + 0.05, num_frames))
        look = rng.integers(0, len(self.looks), num_frames)
        states = np.stack([position, look], axis=-1).astype(np.float32)
        for start in range(0, num_frames, chunk_size):
            s = states[start:start + chunk_size]
            positions = jnp.asarray(s[:, 0])  # every look renders the whole chunk: one compiled shape per look
            looks = np.stack([np.asarray(render(positions)) for render in self._renders])
            images = looks[s[:, 1].astype(np.int64), np.arange(len(s))]
            yield FrameBatch(images, mountain_car_labels(s[:, 0]), s, modes[start:start + chunk_size])
