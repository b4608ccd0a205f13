"""The MuJoCo humanoid in MJX with VLM-RM's set-up (Rocamonde et al. 2023, section 4.4).

brax's humanoid (the standard Gym/dm_control model: 17 actuators, 0.015 s control step on the MJX backend) with:
no "unhealthy" termination (the paper removes it so that poses such as kneeling or lying are reachable), zero task
reward (the only reward is the VLM reward added by :class:`vlmrm_jax.envs.wrappers.VLMRewardWrapper`), and the
scene of brax's MJCF (checker floor, gradient sky) or VLM-RM's textured scene (``look="paper"``,
:mod:`~vlmrm_jax.envs.humanoid.look`), seen through a torso-tracking camera or the authors' fixed one
(``camera="paper"``, :mod:`~vlmrm_jax.envs.humanoid.camera`). This class's defaults (brax look, tracking camera) are
what the shipped ``humanoid-clip-tiny`` was trained on; the main job (``python -m experiments.humanoid``) defaults to
the authors' look and camera, with ``humanoid-clip-tiny-paper`` trained on them; see docs/humanoid_setup.md.

One change to brax's model: every body geom collides with the floor. brax's humanoid.xml lets only the feet touch
the floor (it was tuned for running), so a humanoid that kneels, sits or falls sinks through it head first; VLM-RM's
poses need knees, hips and hands to rest on the ground. Body geoms still do not collide with each other
(``contype=1, conaffinity=0`` against the floor's ``conaffinity=1``). Measured cost on a 2-core CPU: 6,300 -> 4,100
physics env-steps/s at 16 envs, negligible next to rendering.
"""

from __future__ import annotations

import copy
import functools
import warnings
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import mujoco
from brax.envs.base import State
from brax.envs.humanoid import Humanoid as _BraxHumanoid
from brax.io import mjcf

from vlmrm_jax.errors import VlmrmError

#: The paper's episode length for humanoid tasks, in env steps (0.015 s each).
EPISODE_LENGTH = 100
#: The paper's baseline prompt for every humanoid task.
BASELINE_PROMPT = "a humanoid robot"


def floor_contacts(mj_model: mujoco.MjModel) -> mujoco.MjModel:
    """A copy of ``mj_model`` where every geom attached to a body collides with the world's geoms (the floor).

    Sets ``contype=1, conaffinity=0`` on non-world geoms: a pair collides when ``contype_a & conaffinity_b`` or
    ``contype_b & conaffinity_a``, so body geoms touch the floor (``conaffinity=1``) but not each other.
    """
    mj_model = copy.deepcopy(mj_model)
    body_geoms = mj_model.geom_bodyid != 0
    mj_model.geom_contype[body_geoms] = 1
    mj_model.geom_conaffinity[body_geoms] = 0
    return mj_model


class Humanoid(_BraxHumanoid):
    """brax's humanoid on the MJX backend, never terminating, with zero environment reward.

    Observations: float32 [244], brax's proprioceptive humanoid observation (joint positions without the root's x, y;
    joint velocities; centre-of-mass inertia and velocity terms; actuator forces). Actions: float32 [17] in [-1, 1].
    ``state.metrics`` keeps brax's diagnostic terms (x velocity etc.) for logging; they are not added to the reward.

    Args:
        reset_noise_scale: half-width of the uniform noise added to the initial joint positions (radians, metres)
            and velocities at reset.
        look: "brax" (brax's MJCF scene, the default) or "paper" (VLM-RM's textured scene with project-made
            textures: sky box, matte tiled floor, robot skin, one light from above). Physics is the same.
        camera: the default camera of :meth:`make_render_fn`: "tracking" (follows the torso, the default),
            "paper" (the authors' camera as it really rendered: fixed, looking at (0, 0, 1) m) or "oblique" (follows
            the torso from closer, at 45 deg to the front: :data:`~vlmrm_jax.envs.humanoid.camera.CAMERAS`).

    Raises:
        VlmrmError: on an unknown look or camera.
    """

    def __init__(self, reset_noise_scale: float = 1e-2, look: str = "brax", camera: str = "tracking"):
        from vlmrm_jax.envs.humanoid.camera import CAMERAS
        from vlmrm_jax.envs.humanoid.look import LOOKS, paper_look

        if look not in LOOKS:
            raise VlmrmError(f"look={look!r} is not a humanoid look; choose one of {', '.join(LOOKS)}")
        if camera not in CAMERAS:
            raise VlmrmError(f"camera={camera!r} is not a humanoid camera; choose one of {', '.join(CAMERAS)}")
        self.look, self.camera = look, camera
        with warnings.catch_warnings():  # brax's notice that its System is unmaintained: we only use its MJX path
            warnings.filterwarnings("ignore", message="Brax System", category=UserWarning)
            super().__init__(terminate_when_unhealthy=False, reset_noise_scale=reset_noise_scale, backend="mjx")
            mj_model = floor_contacts(self.sys.mj_model)
            if look == "paper":
                mj_model = paper_look(mj_model)
            self.sys = mjcf.load_model(mj_model).replace(opt=self.sys.opt)

    @functools.cached_property
    def observation_size(self) -> int:
        """244. Computed by tracing ``reset`` (brax's default runs an un-jitted reset, which takes ~40 s on CPU)."""
        return jax.eval_shape(self.reset, jax.random.PRNGKey(0)).obs.shape[-1]

    def step(self, state: State, action: jax.Array) -> State:
        """One control step (5 physics steps of 3 ms); ``reward`` is 0 and ``done`` is 0.

        Every leaf keeps the dtype *and* strong type it had after ``reset`` (brax's step returns some weakly typed
        scalars), so a jitted function sees one state structure and compiles once.
        """
        state = super().step(state, action)
        zero = jnp.zeros(state.reward.shape, jnp.float32)
        metrics = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), state.metrics)
        return state.replace(reward=zero, done=zero, metrics=metrics)

    def make_render_fn(self, width: int, height: int, *, shadows: bool = True,
                       camera=None) -> Callable[[State], jax.Array]:
        """A jittable function that renders a state with the JAX ray caster.

        Args:
            width, height: image size in pixels.
            shadows: cast a second ray per pixel toward the light.
            camera: a camera of :mod:`vlmrm_jax.render`; default the env's ``camera`` (see
                :data:`vlmrm_jax.envs.humanoid.camera.CAMERAS`).

        Returns:
            ``render(state) -> float32 [height, width, 3]`` in [0, 1] for one (unbatched) state.

        Raises:
            VlmrmError: on a non-positive size or a camera that does not exist in the model.
        """
        from vlmrm_jax.envs.humanoid.camera import CAMERAS
        from vlmrm_jax.render import RenderConfig, Renderer

        renderer = Renderer(self.sys.mj_model, camera or CAMERAS[self.camera],
                            RenderConfig(width=width, height=height, shadows=shadows))
        sys = self.sys
        return lambda state: renderer.render(sys, state.pipeline_state)

    def step_metrics_fn(self) -> Callable[[State], dict[str, jax.Array]]:
        """Ground-truth pose predicates, logged next to the VLM reward (see :mod:`vlmrm_jax.envs.humanoid.predicates`).

        Returns:
            ``metrics(state) -> {task: float32 []}`` for ONE state: 1.0 where the pose of the task (every key of
            :data:`~vlmrm_jax.envs.humanoid.predicates.PREDICATES`: "kneeling", "lotus", ..., "fallen") holds, else 0.0.
        """
        from vlmrm_jax.envs.humanoid.predicates import evaluate_predicates

        sys = self.sys
        return lambda state: {task: holds.astype(jnp.float32)
                              for task, holds in evaluate_predicates(sys, state.pipeline_state).items()}

    def task_metric(self, prompts: Sequence[str]) -> str | None:
        """The step metric that says whether the prompted pose holds: the task of the first of ``prompts`` that is
        one of the paper's eight goal prompts (e.g. "a humanoid robot kneeling" -> "kneeling"), else None."""
        from vlmrm_jax.envs.humanoid.predicates import task_for_prompt

        return next((task for task in map(task_for_prompt, prompts) if task is not None), None)

    def episode_success(self, holds: jax.Array) -> jax.Array:
        """VLM-RM's criterion: the pose holds on at least 50% of the steps; bool [T, B] -> bool [B]."""
        from vlmrm_jax.eval.success import episode_success

        return episode_success(holds)
