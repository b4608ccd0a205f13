"""Reuse of past data (Di Palo et al. 2023, section 4.1): a lifelong buffer of every episode, relabelled for a new
task by the subgoal detector, seeding behaviour cloning before any new collection.

- :class:`LifelongBuffer` (host, NumPy) keeps every episode collected on earlier tasks: the observations, actions,
  which steps were live, and the frames' embeddings after each action (both cameras' CLIP image embeddings), so a
  new task is relabelled without re-rendering a frame.
- :func:`detect_embedded`: the detector's rule on stored embeddings, ``phi_T(g) . phi_I(o) > gamma`` with the
  views combined as the model was calibrated (``any`` / ``all``), i.e.
  :func:`vlmrm_jax.models.detection.detect_subgoals` minus the image tower.
- :func:`relabel`: a new task's plan (the planner's subgoals) walks each stored episode as collect & infer would
  have: the pursued subgoal advances when the detector sees it (:meth:`CollectInfer.advance`); an episode
  qualifies when a plan subgoal is detected in it, and is kept up to its last detection (the paper's storing
  rule, :func:`~vlmrm_jax.agent.collect_infer.stored_mask`). The old task's env reward is not used: the new
  task's success is the detection of its last subgoal.
- :func:`seed_agent`: the qualifying episodes go into a fresh agent's buffer and ``bc_steps`` of behaviour cloning
  run on them before the first collection.
- :class:`EpisodeLog`: one training run's additions to the buffer on disk, one file per collection keyed by env
  step, so a killed run resumes from its trainer checkpoint with exactly the episodes the buffer held then.

Shapes: ``M`` stored episodes, ``T`` actions per episode, ``O`` observation size, ``V`` camera views, ``D`` embedding
size, ``S`` subgoal captions, ``K`` plan slots.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vlmrm_jax.agent.collect_infer import CollectInfer, CollectInferState, Trajectory, stored_mask
from vlmrm_jax.errors import VlmrmError
from vlmrm_jax.models.detection import check_combine, check_threshold, combine_views

#: The arrays of a stored episode, in the order they are saved.
FIELDS = ("obs", "action", "alive", "embeddings")


def detect_embedded(embeddings: jax.Array, text_embeddings: jax.Array, threshold: float,
                    combine: str | None) -> jax.Array:
    """The detector's verdicts from stored image embeddings (Di Palo et al. 2023: ``phi_T(g) . phi_I(o) > gamma``).

    Args:
        embeddings: float [..., V, D], unit image embeddings of V camera views of each state.
        text_embeddings: float [S, D], unit embeddings of the subgoal captions.
        threshold: gamma in [-1, 1] (the model's calibrated value, ``SubgoalDetector.threshold``).
        combine: ``"any"`` / ``"all"`` across the V views, or None for single views (V must be 1).

    Returns:
        bool [..., S].

    Raises:
        VlmrmError: a threshold outside [-1, 1], an unknown ``combine``, or V > 1 without one.
    """
    threshold = check_threshold(threshold)
    check_combine(combine)
    similarities = jnp.asarray(embeddings, jnp.float32) @ jnp.asarray(text_embeddings, jnp.float32).T  # [.., V, S]
    if combine is None:
        if similarities.shape[-2] != 1:
            raise VlmrmError(f"embeddings hold {similarities.shape[-2]} camera views; pass combine='any' or 'all' "
                             f"(the detector's calibrated rule)")
        return similarities[..., 0, :] > threshold
    return combine_views(similarities, combine) > threshold


class Relabelled(NamedTuple):
    """Stored episodes relabelled for a plan, in the agent buffer's layout (arrays [M, T, ...]).

    Attributes:
        episodes: ``{"obs": float32 [M, T, O], "subgoal": int32 [M, T] (pursued when acting), "action": float32
            [M, T, 2], "mask": bool [M, T] (steps up to the episode's last detection)}``.
        keep: bool [M], the episode qualifies (a plan subgoal was detected in it).
        stage: int32 [M], plan subgoals detected by the episode's end.
    """

    episodes: dict
    keep: jax.Array
    stage: jax.Array


class _Events(NamedTuple):  # what stored_mask reads of a Trajectory
    event: jax.Array
    alive: jax.Array


def relabel(agent: CollectInfer, obs: jax.Array, action: jax.Array, alive: jax.Array,
            detected: jax.Array) -> Relabelled:
    """Relabels stored episodes for ``agent``'s plan by the detector's verdicts (jittable).

    Args:
        agent: the new task's learner (its ``plan`` and :meth:`~CollectInfer.advance` rule are used).
        obs: float32 [M, T, O], the observation each action was chosen from.
        action: float32 [M, T, 2].
        alive: bool [M, T], live steps (the rest is padding).
        detected: bool [M, T, S], the detector's verdicts after each action (:func:`detect_embedded`).

    Returns:
        :class:`Relabelled`.
    """
    def step(stage, x):
        detected_t, alive_t = x
        subgoal = agent.current_subgoal(stage)
        stage, hit = agent.advance(stage, detected_t, alive_t)
        return stage, (subgoal, hit)

    swap = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
    stage, (subgoal, hit) = jax.lax.scan(step, jnp.zeros(obs.shape[0], jnp.int32),
                                         (swap(detected.astype(bool)), swap(alive.astype(bool))))
    keep, mask = stored_mask(_Events(event=hit, alive=swap(alive.astype(bool))))
    episodes = {"obs": jnp.asarray(obs, jnp.float32), "subgoal": swap(subgoal),
                "action": jnp.asarray(action, jnp.float32), "mask": swap(mask)}
    return Relabelled(episodes=episodes, keep=keep, stage=stage)


def seed_agent(agent: CollectInfer, state: CollectInferState, relabelled: Relabelled, bc_steps: int
               ) -> tuple[CollectInferState, jax.Array]:
    """Puts the qualifying relabelled episodes into the agent's buffer and runs ``bc_steps`` Adam steps of behaviour
    cloning on the buffer, before any collection (jittable with ``bc_steps`` static).

    The buffer is a ring of ``agent.config.buffer_capacity`` episodes: with more qualifying episodes, the last ones
    (the newest, in the lifelong buffer's order) are kept.

    Returns:
        (the new state, the mean BC loss float32 [] (0 with no qualifying episode or ``bc_steps == 0``)).
    """
    buffer = agent.buffer.add(state.buffer, relabelled.episodes, relabelled.keep)

    def bc_step(carry, key):
        params, optimizer_state = carry
        loss, grads = jax.value_and_grad(agent.bc_loss)(params, agent.buffer.sample(buffer, key))
        updates, optimizer_state = agent.optimizer.update(grads, optimizer_state, params)
        return (optax.apply_updates(params, updates), optimizer_state), loss

    key, rng = jax.random.split(state.rng)
    if bc_steps > 0:
        (params, optimizer_state), losses = jax.lax.cond(
            agent.buffer.size(buffer) > 0,
            lambda c: jax.lax.scan(bc_step, c, jax.random.split(key, bc_steps)),
            lambda c: (c, jnp.zeros((bc_steps,), jnp.float32)),
            (state.params, state.optimizer_state))
        loss = jnp.mean(losses)
    else:
        params, optimizer_state, loss = state.params, state.optimizer_state, jnp.zeros((), jnp.float32)
    return state.replace(params=params, optimizer_state=optimizer_state, buffer=buffer, rng=rng), loss


class LifelongBuffer:
    """Every episode collected on every task, on the host: arrays [M, T, ...] grown by :meth:`add`.

    Args:
        episode_length: T, actions per episode.
        observation_size: O.
        embedding_shape: (V, D), the per-state embeddings (e.g. (2, 128) for two cameras' CLIP embeddings).

    Raises:
        VlmrmError: a trajectory or file whose shapes differ from these.
    """

    def __init__(self, episode_length: int, observation_size: int, embedding_shape: tuple[int, int]):
        self.shapes = {"obs": (episode_length, observation_size), "action": (episode_length, 2),
                       "alive": (episode_length,), "embeddings": (episode_length, *embedding_shape)}
        self._chunks: dict[str, list[np.ndarray]] = {k: [] for k in FIELDS}
        self._tasks: list[np.ndarray] = []
        self.task_names: list[str] = []

    def __len__(self) -> int:
        return sum(len(c) for c in self._chunks["alive"])

    def add(self, traj: Trajectory, task: str) -> dict[str, np.ndarray]:
        """Appends the N episodes of one collection (``traj`` with ``embeddings``, leaves [T, N, ...]) of ``task``.

        Returns:
            The appended episodes as stored: ``{"obs", "action", "alive", "embeddings" (float16)}``, arrays
            [N, T, ...] (what :meth:`extend` takes back, e.g. from an :class:`EpisodeLog`).

        Raises:
            VlmrmError: ``traj`` has no embeddings (the agent needs an ``embed_fn``) or the wrong shapes.
        """
        if traj.embeddings is None:
            raise VlmrmError("the trajectory holds no frame embeddings; build the CollectInfer with an embed_fn "
                             "so the lifelong buffer can relabel without re-rendering")
        arrays = {"obs": traj.obs, "action": traj.action, "alive": traj.alive, "embeddings": traj.embeddings}
        episodes = {name: np.swapaxes(np.asarray(value), 0, 1) for name, value in arrays.items()}
        return self.extend(episodes, task)

    def extend(self, episodes: dict[str, np.ndarray], task: str) -> dict[str, np.ndarray]:
        """Appends episodes already in the stored layout (arrays [N, T, ...], as :meth:`add` returns them) of
        ``task``; returns them as stored (embeddings float16).

        Raises:
            VlmrmError: a missing field, shapes other than this buffer's, or fields with different N.
        """
        missing = [k for k in FIELDS if k not in episodes]
        if missing:
            raise VlmrmError(f"episodes lack {', '.join(missing)}; pass the dict LifelongBuffer.add returns")
        stored = {}
        for name in FIELDS:
            value = np.asarray(episodes[name])
            if value.shape[1:] != self.shapes[name]:
                raise VlmrmError(f"trajectory {name} has per-episode shape {value.shape[1:]}, the lifelong buffer "
                                 f"holds {self.shapes[name]}; use one buffer per env and embedding size")
            stored[name] = value.astype(np.float16 if name == "embeddings" else value.dtype)
        counts = {len(v) for v in stored.values()}
        if len(counts) != 1:
            raise VlmrmError(f"the episode fields hold different numbers of episodes ({sorted(counts)}); pass one "
                             f"collection's episodes")
        for name in FIELDS:
            self._chunks[name].append(stored[name])
        if task not in self.task_names:
            self.task_names.append(task)
        self._tasks.append(np.full(counts.pop(), self.task_names.index(task), np.int32))
        return stored

    def arrays(self) -> dict[str, np.ndarray]:
        """``{"obs", "action", "alive", "embeddings" (float16), "task" (int32 [M], index into task_names)}``."""
        if not len(self):
            raise VlmrmError("the lifelong buffer is empty; collect episodes on a task first")
        out = {k: np.concatenate(v) for k, v in self._chunks.items()}
        out["task"] = np.concatenate(self._tasks)
        return out

    def relabel(self, agent: CollectInfer, text_embeddings, threshold: float, combine: str | None) -> Relabelled:
        """Every stored episode relabelled for ``agent``'s plan by :func:`detect_embedded` (no rendering)."""
        a = self.arrays()
        detected = detect_embedded(a["embeddings"].astype(np.float32), text_embeddings, threshold, combine)
        return jax.jit(relabel, static_argnums=0)(agent, a["obs"], a["action"], a["alive"], detected)

    def save(self, path: str | Path) -> Path:
        """Writes the buffer as one ``.npz`` (atomically: a temporary file renamed)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, task_names=np.array(self.task_names), **self.arrays())
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "LifelongBuffer":
        """A buffer written by :meth:`save`.

        Raises:
            VlmrmError: the file is missing or not a lifelong buffer.
        """
        try:
            with np.load(path) as f:
                data = {k: f[k] for k in (*FIELDS, "task", "task_names")}
        except (OSError, KeyError, ValueError) as e:
            raise VlmrmError(f"{path} is not a lifelong buffer written by LifelongBuffer.save ({e})") from None
        buffer = cls(data["obs"].shape[1], data["obs"].shape[2], data["embeddings"].shape[2:])
        for name in FIELDS:
            buffer._chunks[name].append(data[name])
        buffer._tasks.append(data["task"])
        buffer.task_names = [str(t) for t in data["task_names"]]
        return buffer


class EpisodeLog:
    """The episodes one training run added to a lifelong buffer, on disk, so that a killed run can be resumed with a
    buffer that matches its checkpoint: ``<directory>/<step>.npz``, one file per collection, named by the env step
    the trainer reached with that collection (the step its checkpoint would carry).

    Each file is written under a temporary name and renamed, so a kill while writing leaves no partial file. On
    resume, :meth:`truncate` to the checkpoint's env step drops the collections of the iterations the resumed run
    will repeat; :meth:`read` then gives, in order, exactly the episodes the buffer held at that checkpoint.

    Args:
        directory: where the files live (created on the first :meth:`write`).
    """

    SUFFIX = ".npz"

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def steps(self) -> list[int]:
        """The env steps of the stored collections, ascending."""
        if not self.directory.is_dir():
            return []
        return sorted(int(p.name[:-len(self.SUFFIX)]) for p in self.directory.glob("*" + self.SUFFIX)
                      if p.name[:-len(self.SUFFIX)].isdigit())

    def _path(self, step: int) -> Path:
        return self.directory / f"{int(step):012d}{self.SUFFIX}"

    def write(self, step: int, episodes: dict[str, np.ndarray]) -> Path:
        """Stores one collection's episodes (:meth:`LifelongBuffer.add`'s return value) as collection ``step``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(step)
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("wb") as f:
            np.savez(f, **{k: np.asarray(episodes[k]) for k in FIELDS})
        tmp.replace(path)
        return path

    def truncate(self, max_step: int | None) -> None:
        """Removes the collections after env step ``max_step`` (every one with None: a run that restarts from
        scratch) and temporary files left by a kill while writing."""
        for step in self.steps():
            if max_step is None or step > max_step:
                self._path(step).unlink()
        if self.directory.is_dir():
            for tmp in self.directory.glob(".*.tmp"):
                tmp.unlink()

    def read(self) -> list[dict[str, np.ndarray]]:
        """The stored collections in env-step order, each ``{"obs", "action", "alive", "embeddings"}`` [N, T, ...].

        Raises:
            VlmrmError: a file that is not a collection written by :meth:`write`.
        """
        out = []
        for step in self.steps():
            path = self._path(step)
            try:
                with np.load(path) as f:
                    out.append({k: f[k] for k in FIELDS})
            except (OSError, KeyError, ValueError) as e:
                raise VlmrmError(f"{path} is not a collection written by EpisodeLog.write ({e}); delete it with the "
                                 f"run's checkpoints from env step {step} on, then resume") from None
        return out


__all__ = ["EpisodeLog", "LifelongBuffer", "Relabelled", "detect_embedded", "relabel", "seed_agent"]
