"""Our pipeline, stage by stage, and fused: jitted programs built from the library, timed apart from compiling.

Every program runs ``steps`` batches of ``num_envs`` environments per call (a ``jax.lax.scan`` or ``jax.lax.map``
over the batches, so Python dispatch is paid once per call), with uniform random actions in [-1, 1]. The stages
(:data:`STAGES`) take the previous stage's output, on the device, as input:

* ``physics``: the training env's step (brax's batching, episode truncation and automatic reset around
  ``env.step``) with rendering and CLIP stubbed out (:func:`train_env`), scanned; outputs the visited states;
* ``render``: the env's JAX renderer (``env.make_render_fn``) on every state: float32 [steps, N, S, S, 3];
* ``clip``: CLIP's preprocessing and image embedding (``CLIP.embed_images``), one batch of N frames at a time;
* ``reward``: the goal-baseline reward (:class:`vlmrm_jax.rewards.GoalBaselineReward`) of the embeddings.

``end-to-end`` is the fused loop itself: the training env of :func:`vlmrm_jax.envs.wrappers.wrap_for_vlm_training`
(episode truncation, batching, render + CLIP + reward, automatic reset) scanned over ``steps`` env steps, one
program, which is what PPO's rollouts run. :func:`ppo_iterations` times whole PPO iterations
(:class:`vlmrm_jax.rl.PPO`: rollouts through that env, then the updates).
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp

from vlmrm_jax.errors import VlmrmError

#: Environments of ``--env``.
ENV_NAMES = ("humanoid", "cartpole")
#: The stages timed one by one, in pipeline order, then the fused end-to-end step.
STAGES = ("physics", "render", "clip", "reward")
END_TO_END = "end-to-end"


def make_bench_env(name: str):
    """The environment ``name`` (one of :data:`ENV_NAMES`) with the paper's set-up.

    Raises:
        VlmrmError: on an unknown name.
    """
    if name == "humanoid":
        from vlmrm_jax.envs.humanoid import Humanoid

        return Humanoid()
    if name == "cartpole":
        from vlmrm_jax.envs.classic import CartPole

        return CartPole()
    raise VlmrmError(f"unknown --env {name!r}; choose from {', '.join(ENV_NAMES)}")


def task_prompts(name: str) -> tuple[str, str]:
    """(goal prompt, baseline prompt) of the paper for env ``name``."""
    if name == "humanoid":
        from vlmrm_jax.envs.humanoid import BASELINE_PROMPT

        return "a humanoid robot kneeling", BASELINE_PROMPT
    from vlmrm_jax.envs.classic import CARTPOLE_BASELINE_PROMPT, CARTPOLE_PROMPT

    return CARTPOLE_PROMPT, CARTPOLE_BASELINE_PROMPT


def episode_length(name: str) -> int:
    """The paper's episode length for env ``name``, in env steps."""
    if name == "humanoid":
        from vlmrm_jax.envs.humanoid import EPISODE_LENGTH
    else:
        from vlmrm_jax.envs.classic import EPISODE_LENGTH
    return EPISODE_LENGTH


class Timed:
    """A jitted program ``carry -> carry``, compiled ahead of time and then called repeatedly on its own output.

    Args:
        name: label for progress lines.
        fn: ``(carry, *consts) -> carry`` (traced once).
        carry: the initial carry (a pytree of arrays).
        env_steps: env steps one call performs (all environments together).
        setup_s: seconds spent before (e.g. compiling and running a jitted reset), added to ``compile_s``.
        consts: arguments passed unchanged to every call (e.g. weights), not returned.

    Attributes:
        compile_s: seconds to lower and compile ``fn`` (plus ``setup_s``).
        first_call_s: seconds of the first call (not counted in the steady state).
        seconds: wall-clock seconds of every later call (:meth:`__call__`).
    """

    def __init__(self, name: str, fn: Callable[..., Any], carry: Any, env_steps: int, setup_s: float = 0.0,
                 consts: tuple = ()):
        self.name = name
        self.env_steps = env_steps
        self.consts = consts
        start = time.perf_counter()
        self.compiled = jax.jit(fn).lower(carry, *consts).compile()
        self.compile_s = time.perf_counter() - start + setup_s
        start = time.perf_counter()
        self.carry = jax.block_until_ready(self.compiled(carry, *consts))
        self.first_call_s = time.perf_counter() - start
        self.seconds: list[float] = []

    def __call__(self) -> float:
        """Runs the program once on the last carry; returns (and records) its wall-clock seconds."""
        start = time.perf_counter()
        self.carry = jax.block_until_ready(self.compiled(self.carry, *self.consts))
        elapsed = time.perf_counter() - start
        self.seconds.append(elapsed)
        return elapsed

    @property
    def median_s(self) -> float:
        """Median seconds per call over the timed calls."""
        return statistics.median(self.seconds)


def timed_setup(fn: Callable, *args):
    """``(jax.jit(fn)(*args) with the result ready, seconds taken)``: compile and run of a one-off program."""
    start = time.perf_counter()
    out = jax.block_until_ready(jax.jit(fn)(*args))
    return out, time.perf_counter() - start


def _random_actions(key: jax.Array, num_envs: int, action_size: int) -> jax.Array:
    return jax.random.uniform(key, (num_envs, action_size), jnp.float32, -1.0, 1.0)


def train_env(env, clip, reward, episode_length: int, render_fn=None):
    """The library's training env (:func:`vlmrm_jax.envs.wrappers.wrap_for_vlm_training`) around ``env``.

    With ``render_fn=None`` the frames and embeddings are zeros (1 x 1 pixel frames, zero embeddings): the same
    state structure as the real one, with none of its rendering or CLIP cost. That env gives the physics stage
    (physics with the training wrappers' episode truncation and automatic reset) and the initial state of every
    image size, compiled once per batch size.
    """
    from vlmrm_jax.envs.wrappers import wrap_for_vlm_training

    if render_fn is None:
        dim = clip.embed_dim
        render_fn = lambda state: jnp.zeros((1, 1, 3), jnp.float32)  # noqa: E731
        embed_fn = lambda frames: jnp.zeros((frames.shape[0], dim), jnp.float32)  # noqa: E731
    else:
        embed_fn = lambda images: clip.embed_images(clip.params, images)  # noqa: E731 - closed over (pipeline: arguments)
    return wrap_for_vlm_training(env, episode_length=episode_length, render_fn=render_fn, embed_fn=embed_fn,
                                 reward=reward)


def initial_state(env, clip, reward, num_envs: int, episode_length: int, seed: int = 0):
    """(the training env's state after a jitted reset of ``num_envs`` envs, seconds to compile and run it).

    The state has the structure of the real training env's (see :func:`train_env`); its reward is not the CLIP
    reward of the reset frames, which no timing depends on.
    """
    keys = jax.random.split(jax.random.PRNGKey(seed), num_envs)
    return timed_setup(train_env(env, clip, reward, episode_length).reset, keys)


def _scan(step: Callable, num_envs: int, action_size: int, steps: int, collect: bool):
    """``(state, key, acc) -> (state, key, acc[, states])``: ``steps`` env steps of the batch with random actions;
    ``acc`` (float32 []) sums the rewards; with ``collect`` the visited states are stacked [steps, N, ...]."""

    def body(carry, _):
        state, key, acc = carry
        key, action_key = jax.random.split(key)
        state = step(state, _random_actions(action_key, num_envs, action_size))
        return (state, key, acc + jnp.sum(state.reward)), (state if collect else None)

    def program(carry):
        (state, key, acc), states = jax.lax.scan(body, carry[:3], None, length=steps)
        return (state, key, acc, states) if collect else (state, key, acc)

    return program


class PipelineStages:
    """Our stages (:data:`STAGES`) and the fused end-to-end step for one env, batch size and image size.

    Args:
        env: an unbatched env of :func:`make_bench_env`.
        clip: a loaded :class:`vlmrm_jax.models.CLIP`.
        reward: the :class:`vlmrm_jax.rewards.GoalBaselineReward` of the task prompts.
        state: the initial batched state (:func:`initial_state`); N is its batch size.
        image_size: S, rendered frames are S x S pixels (CLIP's preprocessing resizes them to its input size).
        steps: K, batches (env steps) per call.
        episode_length: truncation of the training env's episodes (env steps).
        seed: PRNG seed of the actions.

    The embedding function closes over ``clip.params`` exactly as :func:`vlmrm_jax.pipeline.build` does.
    """

    def __init__(self, env, clip, reward, state, image_size: int, steps: int, episode_length: int, seed: int = 0):
        self.env, self.clip, self.reward, self.state = env, clip, reward, state
        self.num_envs = int(state.reward.shape[0])
        self.image_size, self.steps, self.episode_length = image_size, steps, episode_length
        self.key = jax.random.PRNGKey(seed + 1)
        self.render_fn = env.make_render_fn(image_size, image_size)
        self.embed_fn = lambda images: clip.embed_images(clip.params, images)  # closed over (pipeline: arguments)

    def physics(self) -> Timed:
        """K steps of the batch through the training wrappers, no rendering or CLIP; the carry's last element stacks
        the visited states [K, N, ...] for the render stage."""
        env = train_env(self.env, self.clip, self.reward, self.episode_length)
        program = _scan(env.step, self.num_envs, self.env.action_size, self.steps, collect=True)
        states = jax.eval_shape(program, (self.state, self.key, jnp.zeros((), jnp.float32)))[3]
        carry = (self.state, self.key, jnp.zeros((), jnp.float32), jax.tree.map(
            lambda x: jnp.zeros(x.shape, x.dtype), states))
        return Timed("physics", program, carry, env_steps=self.num_envs * self.steps)

    def render(self, states) -> Timed:
        """``states [K, N, ...] -> frames float32 [K, N, S, S, 3]``, one batch of N states at a time."""
        render = lambda s: jax.lax.map(jax.vmap(self.render_fn), s)  # noqa: E731
        return self._stage("render", render, states)

    def clip_stage(self, frames) -> Timed:
        """``frames [K, N, S, S, 3] -> unit embeddings float32 [K, N, D]``, one batch of N frames per CLIP call."""
        return self._stage("clip", lambda f: jax.lax.map(self.embed_fn, f), frames)

    def reward_stage(self, embeddings) -> Timed:
        """``embeddings [K, N, D] -> rewards float32 [K, N]``."""
        return self._stage("reward", self.reward, embeddings)

    def _stage(self, name: str, fn: Callable, inputs) -> Timed:
        out = jax.eval_shape(fn, inputs)
        return Timed(name, lambda _, x: fn(x), jnp.zeros(out.shape, out.dtype), env_steps=self.num_envs * self.steps,
                     consts=(inputs,))

    def end_to_end(self) -> Timed:
        """The fused loop: K steps of the training env (physics, render, CLIP, reward, auto-reset), one program."""
        env = train_env(self.env, self.clip, self.reward, self.episode_length, render_fn=self.render_fn)
        program = _scan(env.step, self.num_envs, self.env.action_size, self.steps, collect=False)
        return Timed(END_TO_END, program, (self.state, self.key, jnp.zeros((), jnp.float32)),
                     env_steps=self.num_envs * self.steps)


def ppo_iterations(stages: PipelineStages, unroll_length: int, num_minibatches: int = 4, epochs: int = 4,
                   seed: int = 0) -> Timed:
    """Whole PPO iterations (:class:`vlmrm_jax.rl.PPO`) on the end-to-end env, as a :class:`Timed` program.

    One iteration collects ``num_minibatches`` unrolls of ``unroll_length`` steps of ``num_envs`` envs (batch size =
    ``num_envs``) and runs ``epochs`` epochs of ``num_minibatches`` minibatch updates with brax's PPO networks.
    ``compile_s`` includes ``ppo.init`` (compile + run); ``env_steps`` is the env steps per iteration.
    """
    from vlmrm_jax.rl import PPO, PPOConfig

    config = PPOConfig(num_envs=stages.num_envs, unroll_length=unroll_length, batch_size=stages.num_envs,
                       num_minibatches=num_minibatches, num_updates_per_batch=epochs,
                       episode_length=stages.episode_length)
    ppo = PPO(train_env(stages.env, stages.clip, stages.reward, config.episode_length, render_fn=stages.render_fn),
              config)
    state, init_s = timed_setup(ppo.init, jax.random.PRNGKey(seed))
    return Timed("ppo", lambda state: ppo.iteration(state)[0], state, config.env_steps_per_iteration,
                 setup_s=init_s)


def clip_only_program(clip, batch: int, seed: int = 0) -> Timed:
    """CLIP's image embedding alone on a batch of frames already at its input size (normalisation + encoder), with
    the weights as an argument: the encoder's throughput, for the roofline.

    ``env_steps`` of the returned program is the number of images per call.
    """
    size = clip.image_size
    images = jax.random.uniform(jax.random.PRNGKey(seed), (batch, size, size, 3), jnp.float32)

    def program(acc, params, images):
        return acc + jnp.sum(clip.embed_images(params, images))

    return Timed("clip-only", program, jnp.zeros((), jnp.float32), env_steps=batch, consts=(clip.params, images))
