"""What a collect & infer run shows: a greedy evaluation (ground-truth success), the success-rate curve and a video of
one episode with the current subgoal and the detections written on it."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import jax
import numpy as np

from vlmrm_jax.agent.collect_infer import CollectInfer, CollectInferState, Trajectory
from vlmrm_jax.eval.video import caption_frames, write_video
from vlmrm_jax.render import to_uint8


def evaluate(agent: CollectInfer, state: CollectInferState, key: jax.Array, num_episodes: int,
             *, keep_states: bool = True) -> tuple[dict, Trajectory]:
    """Plays ``num_episodes`` episodes with the greedy policy (most likely cell, no epsilon), subgoals advancing on
    the detector as in training. With ``num_episodes == agent.config.num_envs`` and ``keep_states`` this reuses
    the training iterations' compiled collect.

    Returns:
        ({"episodes", "success_rate" (ground truth), "subgoals_reached" (mean fraction of the plan detected),
        "episode_length_mean"}, the :class:`Trajectory` with states when ``keep_states``).
    """
    traj = agent.collect(state.params, key, False, num_envs=num_episodes, keep_states=keep_states)
    success = np.asarray(traj.success).any(axis=0)
    summary = {"episodes": num_episodes, "success_rate": float(success.mean()),
               "subgoals_reached": float(np.asarray(traj.stage[-1]).mean() / agent.plan_length),
               "episode_length_mean": float(np.asarray(traj.alive).sum(axis=0).mean())}
    return summary, traj


def episode_video(path: str | Path, traj: Trajectory, render_fn: Callable, labels: Sequence[str], *,
                  episode: int = 0, use_subgoals: bool = True, fps: float = 2.0) -> Path:
    """Writes one episode of ``traj`` (collected with ``keep_states``) as MP4, one frame per action.

    Args:
        path: output file (.mp4 or .gif).
        traj: from :func:`evaluate`.
        render_fn: renders ONE state (one camera) -> float32 [H, W, 3].
        labels: a short label per subgoal id (e.g. "red on blue"), drawn as the caption.
        episode: which of the trajectory's episodes.
        use_subgoals: False for the sparse learner (no detector: only the step and the ground truth are drawn).
        fps: frames per second.
    """
    alive = np.asarray(traj.alive[:, episode])
    steps = int(alive.sum())
    states = jax.tree.map(lambda x: x[:steps, episode], traj.states)
    frames = np.asarray(to_uint8(jax.jit(jax.vmap(render_fn))(states)))
    captions = []
    for t in range(steps):
        done = "  SUCCESS" if bool(traj.success[t, episode]) else ""
        if use_subgoals:
            seen = [labels[i] for i in np.flatnonzero(np.asarray(traj.detected[t, episode]))]
            text = f"{t + 1}: goal {labels[int(traj.subgoal[t, episode])]} | seen: {', '.join(seen) or '-'}{done}"
        else:
            text = f"action {t + 1}{done}"
        captions.append(text)
    return write_video(path, caption_frames(frames, captions), fps=fps)


def plot_success_curve(records: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """Plots ``success_rate`` (and ``greedy_success_rate``, ``subgoals_reached`` when logged) against env steps.

    Args:
        records: metrics records as written to ``metrics.jsonl``.
        path: output PNG.
        title: figure title (e.g. the instruction and learner).
    """
    from matplotlib.figure import Figure

    path = Path(path)
    steps = [r["env_steps"] for r in records]
    fig = Figure(figsize=(7, 4), dpi=110)
    ax = fig.subplots()
    names = {"success_rate": "success rate (collecting, ground truth)",
             "greedy_success_rate": "success rate (greedy, ground truth)",
             "subgoals_reached": "fraction of subgoals detected"}
    for key, label in names.items():
        if records and key in records[0]:
            ax.plot(steps, [r[key] for r in records], label=label, linestyle="--" if key == "subgoals_reached" else "-")
    ax.set_xlabel("env steps (actions)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return path
