"""The reference pipeline: the authors' design (Rocamonde et al. 2023) rebuilt from standard parts.

The authors step gym/MuJoCo environments on the CPU, render each with MuJoCo's OpenGL renderer, batch the frames
into PyTorch CLIP and compute the reward from the embeddings. Here, on the same machine as our fused loop:

* physics: MuJoCo's C physics (``mujoco.mj_step``, ``n_frames`` substeps per control step, as our env does) on the
  *same* ``MjModel`` as our humanoid, one environment after the other as stable-baselines3's ``DummyVecEnv`` does,
  with the truncation at ``episode_length`` steps and a reset; CartPole: gymnasium's ``CartPoleEnv`` with the
  authors' angle wrap and position clip;
* rendering: ``mujoco.Renderer`` (EGL, or OSMesa) with the same tracking camera (one renderer, reused for every env:
  the cheapest way to render N environments with it); CartPole: gymnasium's pygame renderer (its 600 x 400 canvas,
  as the authors used it);
* CLIP: transformers' ``CLIPModel`` with the *same* weights as our Flax CLIP (:func:`benchmarks.models.torch_twin`),
  preprocessing in torch as the authors' ``CLIPEmbed`` does (bicubic antialiased resize of the shortest side, centre
  crop, normalisation), ``get_image_features`` on the batch, under ``torch.inference_mode`` (bfloat16 autocast on
  request);
* reward: ``1 - 0.5 |(s - g) P|^2`` in torch with our reward's ``g`` and ``P``, returned as a NumPy array.

:meth:`ReferencePipeline.step` times each of the four stages of one env step of the batch.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np

from vlmrm_jax.errors import VlmrmError

#: Stage names of :meth:`ReferencePipeline.step`, in order (as :data:`benchmarks.stages.STAGES`).
STAGES = ("physics", "render", "clip", "reward")

GL_HELP = ("MuJoCo's renderer needs a headless OpenGL: apt-get install -y libegl1 libgl1-mesa-dri (MUJOCO_GL=egl) "
           "or apt-get install -y libosmesa6 (MUJOCO_GL=osmesa)")


@contextlib.contextmanager
def headless_gl(preferred: str | None = None):
    """Points ``mujoco.Renderer`` at a headless OpenGL backend for the duration of the block; yields its name.

    MuJoCo picks its GL backend when it is first imported (from ``MUJOCO_GL``), possibly by another module, so the
    backend class is selected explicitly here: ``preferred`` (or ``MUJOCO_GL``) if it is ``egl`` or ``osmesa``,
    else EGL with OSMesa as the fallback.

    Raises:
        VlmrmError: if neither backend loads (the message says what to install).
    """
    import os

    from mujoco.rendering.classic import gl_context

    wanted = (preferred or os.environ.get("MUJOCO_GL", "")).lower()
    order = [wanted] if wanted in ("egl", "osmesa") else ["egl", "osmesa"]
    errors = []
    for backend in order:
        try:
            if backend == "egl":
                from mujoco.egl import GLContext
            else:
                from mujoco.osmesa import GLContext
            context = GLContext(8, 8)  # the library loads and a context can be made
            context.free()
        except Exception as error:  # noqa: BLE001 - any failure to load a backend has the same fix
            errors.append(f"{backend}: {type(error).__name__}: {error}")
            continue
        saved = getattr(gl_context, "GLContext", None)
        gl_context.GLContext = GLContext
        try:
            yield backend
        finally:
            gl_context.GLContext = saved
        return
    raise VlmrmError(f"no headless OpenGL for mujoco.Renderer ({'; '.join(errors)}); {GL_HELP}")


class MujocoHumanoid:
    """``num_envs`` humanoids in MuJoCo's C physics, stepped and rendered one after the other.

    Args:
        env: our :class:`vlmrm_jax.envs.humanoid.Humanoid`; its ``MjModel``, control step (``n_frames`` substeps) and
            reset noise are used.
        num_envs: N.
        image_size: S, frames are S x S.
        episode_length: steps after which an environment is reset (truncation).
        seed: NumPy seed of the resets.

    Must be created and used inside :func:`headless_gl`.
    """

    def __init__(self, env, num_envs: int, image_size: int, episode_length: int, seed: int = 0):
        import mujoco

        from vlmrm_jax.envs.humanoid.camera import HUMANOID_CAMERA

        self.mujoco = mujoco
        self.model = env.sys.mj_model
        self.n_frames = int(round(env.dt / self.model.opt.timestep))
        self.noise = float(env._reset_noise_scale)
        self.action_size = int(self.model.nu)
        self.episode_length = episode_length
        self.rng = np.random.default_rng(seed)
        self.datas = [mujoco.MjData(self.model) for _ in range(num_envs)]
        self.steps = np.zeros(num_envs, np.int64)
        for data in self.datas:
            self._reset(data)
        self.camera = HUMANOID_CAMERA
        try:
            self.renderer = mujoco.Renderer(self.model, image_size, image_size)
        except Exception as error:  # noqa: BLE001
            raise VlmrmError(f"mujoco.Renderer failed ({error}); {GL_HELP}") from None
        self.frames = np.empty((num_envs, image_size, image_size, 3), np.uint8)

    def _reset(self, data) -> None:
        mujoco = self.mujoco
        mujoco.mj_resetData(self.model, data)
        data.qpos[:] = self.model.qpos0 + self.rng.uniform(-self.noise, self.noise, self.model.nq)
        data.qvel[:] = self.rng.uniform(-self.noise, self.noise, self.model.nv)
        mujoco.mj_forward(self.model, data)

    def physics(self, actions: np.ndarray) -> np.ndarray:
        """One control step of every env (resetting those whose episode ended); returns observations float64
        [N, O] (brax's humanoid observation terms: qpos[2:], qvel, cinert, cvel, qfrc_actuator)."""
        obs = []
        for i, (data, action) in enumerate(zip(self.datas, actions)):
            data.ctrl[:] = action
            for _ in range(self.n_frames):
                self.mujoco.mj_step(self.model, data)
            self.steps[i] += 1
            if self.steps[i] >= self.episode_length:
                self._reset(data)
                self.steps[i] = 0
            obs.append(np.concatenate([data.qpos[2:], data.qvel, data.cinert[1:].ravel(), data.cvel[1:].ravel(),
                                       data.qfrc_actuator]))
        return np.stack(obs)

    def render(self) -> np.ndarray:
        """Every env's frame with the paper's tracking camera: uint8 [N, S, S, 3]."""
        for i, data in enumerate(self.datas):
            self.renderer.update_scene(data, self.camera.to_mjv_camera(self.model, data))
            self.renderer.render(out=self.frames[i])
        return self.frames

    def close(self) -> None:
        """Frees the GL context."""
        self.renderer.close()


class GymCartPole:
    """``num_envs`` gymnasium ``CartPoleEnv`` s (never terminating, the authors' wrap and clip), rendered by pygame.

    Frames are gymnasium's 600 x 400 canvas whatever ``image_size`` is: CLIP's preprocessing resizes them, as in the
    authors' pipeline.

    Raises:
        VlmrmError: if pygame is not installed.
    """

    def __init__(self, env, num_envs: int, image_size: int, episode_length: int, seed: int = 0):
        del env, image_size
        import os

        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")  # pygame.init() probes sound and display otherwise
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        try:
            import pygame  # noqa: F401
        except ImportError:
            raise VlmrmError("the CartPole reference renders with gymnasium's pygame renderer: pip install pygame "
                             "(or pass --no-reference)") from None
        from gymnasium.envs.classic_control.cartpole import CartPoleEnv

        self.envs = [CartPoleEnv(render_mode="rgb_array") for _ in range(num_envs)]
        for i, e in enumerate(self.envs):
            e.reset(seed=seed + i)
        self.action_size = 1
        self.episode_length = episode_length
        self.steps = np.zeros(num_envs, np.int64)

    def physics(self, actions: np.ndarray) -> np.ndarray:
        """One step of every env (push right iff ``action > 0``); returns observations float64 [N, 4]."""
        obs = []
        for i, (e, action) in enumerate(zip(self.envs, actions)):
            e.step(int(action[0] > 0))
            e.steps_beyond_terminated = None  # termination is removed, as in the paper
            x, x_dot, theta, theta_dot = e.state
            e.state = np.array([np.clip(x, -e.x_threshold, e.x_threshold), x_dot,
                                (theta + np.pi) % (2 * np.pi) - np.pi, theta_dot])
            self.steps[i] += 1
            if self.steps[i] >= self.episode_length:
                e.reset()
                self.steps[i] = 0
            obs.append(e.state)
        return np.stack(obs)

    def render(self) -> np.ndarray:
        """Every env's frame: uint8 [N, 400, 600, 3]."""
        return np.stack([e.render() for e in self.envs])

    def close(self) -> None:
        """Closes the pygame surfaces."""
        for e in self.envs:
            e.close()


class TorchCLIPReward:
    """PyTorch CLIP embedding and the goal-baseline reward of a batch of frames.

    Args:
        model: transformers' ``CLIPModel`` (eval mode).
        clip: our :class:`vlmrm_jax.models.CLIP` with the same weights (for its input size and normalisation).
        reward: our :class:`vlmrm_jax.rewards.GoalBaselineReward` (its ``goal`` and ``projection`` are used).
        bfloat16: run the model under ``torch.autocast`` in bfloat16.
        device: torch device ("cpu", "cuda").
    """

    def __init__(self, model, clip, reward, bfloat16: bool = False, device: str = "cpu"):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.size = clip.image_size
        self.mean = torch.tensor(clip.image_mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(clip.image_std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.goal = torch.tensor(np.asarray(reward.goal), device=self.device)
        self.projection = torch.tensor(np.asarray(reward.projection), device=self.device)
        self.bfloat16 = bfloat16

    def preprocess(self, frames: np.ndarray):
        """uint8 [B, H, W, 3] -> float32 [B, 3, S, S] pixel values (resize shortest side, centre crop, normalise)."""
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        height, width = x.shape[-2:]
        if (height, width) != (self.size, self.size):
            from vlmrm_jax.models.preprocess import resized_shape

            new_h, new_w = resized_shape(height, width, self.size)
            x = torch.nn.functional.interpolate(x, size=(new_h, new_w), mode="bicubic", antialias=True,
                                                align_corners=False).clamp_(0.0, 1.0)
            top, left = (new_h - self.size) // 2, (new_w - self.size) // 2
            x = x[..., top:top + self.size, left:left + self.size]
        return (x - self.mean) / self.std

    def embed(self, frames: np.ndarray):
        """Unit image embeddings, torch float32 [B, D], of uint8 frames [B, H, W, 3]."""
        torch = self.torch
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bfloat16):
            features = self.model.get_image_features(pixel_values=self.preprocess(frames)).float()
        return features / features.norm(dim=-1, keepdim=True)

    def embed_pixels(self, pixel_values):
        """Encoder only: torch [B, 3, S, S] pixel values -> features [B, D] (for the roofline)."""
        torch = self.torch
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bfloat16):
            return self.model.get_image_features(pixel_values=pixel_values)

    def reward(self, embeddings) -> np.ndarray:
        """``1 - 0.5 |(s - g) P|^2`` per row: float32 [B] as NumPy (what an RL library receives)."""
        with self.torch.inference_mode():
            y = (embeddings - self.goal) @ self.projection
            return (1.0 - 0.5 * (y * y).sum(-1)).cpu().numpy()

    def tune_threads(self, frames: np.ndarray, repeats: int = 3) -> int:
        """Sets torch's intra-op threads to 1 or to all cores, whichever embeds ``frames`` faster; returns it.

        On a CPU shared with other work, OpenMP's spinning threads can make small models 10x slower with all cores
        than with one, so all cores are kept only when they are at least 20% faster on this batch. No-op (returns
        the current count) on a GPU.
        """
        import os

        torch = self.torch
        if self.device.type != "cpu":
            return torch.get_num_threads()
        seconds = {}
        for threads in sorted({1, os.cpu_count() or 1}):
            torch.set_num_threads(threads)
            self.embed(frames)
            start = time.perf_counter()
            for _ in range(repeats):
                self.embed(frames)
            seconds[threads] = time.perf_counter() - start
        best = max(seconds) if seconds[max(seconds)] < 0.8 * seconds[1] else 1
        torch.set_num_threads(best)
        return best

    def synchronize(self) -> None:
        """Waits for queued device work (CUDA); no-op on the CPU."""
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()


class ReferencePipeline:
    """The reference env step: physics, rendering, CLIP, reward, each timed.

    Args:
        env_name: "humanoid" or "cartpole".
        env: our env of that name (its model and constants are shared).
        clip_reward: a :class:`TorchCLIPReward`.
        num_envs, image_size, episode_length, seed: as in :class:`MujocoHumanoid`.
    """

    def __init__(self, env_name: str, env, clip_reward: TorchCLIPReward, num_envs: int, image_size: int,
                 episode_length: int, seed: int = 0):
        cls = MujocoHumanoid if env_name == "humanoid" else GymCartPole
        self.envs = cls(env, num_envs, image_size, episode_length, seed)
        self.clip_reward = clip_reward
        self.num_envs = num_envs
        self.rng = np.random.default_rng(seed)
        self.frames = None

    def step(self) -> dict[str, float]:
        """One env step of the batch with uniform random actions in [-1, 1]; returns seconds per stage
        (:data:`STAGES`)."""
        times = {}
        start = time.perf_counter()
        actions = self.rng.uniform(-1.0, 1.0, (self.num_envs, self.envs.action_size))
        self.envs.physics(actions)
        times["physics"] = time.perf_counter() - start
        start = time.perf_counter()
        self.frames = self.envs.render()
        times["render"] = time.perf_counter() - start
        start = time.perf_counter()
        embeddings = self.clip_reward.embed(self.frames)
        self.clip_reward.synchronize()
        times["clip"] = time.perf_counter() - start
        start = time.perf_counter()
        self.clip_reward.reward(embeddings)
        times["reward"] = time.perf_counter() - start
        return times

    def run(self, steps: int) -> dict[str, float]:
        """``steps`` env steps; returns the summed seconds per stage."""
        total = dict.fromkeys(STAGES, 0.0)
        for _ in range(steps):
            for stage, seconds in self.step().items():
                total[stage] += seconds
        return total

    def close(self) -> None:
        """Frees the renderer."""
        self.envs.close()
