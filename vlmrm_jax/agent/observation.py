"""Learning from observation (Di Palo et al. 2023, section 4.3): an expert's video -> its sequence of subgoals.

The detector scores every frame of the video against every subgoal caption (``phi_T(g) . phi_I(o)``); a subgoal is
seen once its score stays above gamma for ``min_frames`` consecutive frames (debouncing: one noisy frame is not a
detection), and the expert's sequence is the seen subgoals in the order of their first (debounced) detection, each
once. The agent then plays that sequence with its skills (:class:`~vlmrm_jax.agent.schedule.SkillScheduler`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vlmrm_jax.errors import VlmrmError


def read_video(path: str | Path) -> np.ndarray:
    """The frames of a video file (MP4, GIF, ... via imageio), uint8 [F, H, W, 3].

    Raises:
        VlmrmError: one line when the file is missing, cannot be decoded, or holds no frames.
    """
    import imageio.v3 as iio

    path = Path(path)
    if not path.is_file():
        raise VlmrmError(f"video {str(path)!r} does not exist; pass the path of an MP4 of the expert (e.g. one "
                         f"written by python -m experiments.stacking_reuse --expert-videos N)")
    try:
        frames = np.asarray(iio.imread(path))
    except Exception as e:  # imageio raises many types for undecodable files
        detail = (str(e).splitlines() or [""])[0][:120]
        raise VlmrmError(f"video {str(path)!r} cannot be read ({type(e).__name__}: {detail}); pass an MP4 or GIF "
                         f"that imageio/ffmpeg can decode") from None
    if frames.ndim == 3:  # a single image
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise VlmrmError(f"video {str(path)!r} holds no frames (shape {frames.shape}); pass a video with at least one "
                         f"RGB frame")
    if frames.shape[-1] == 4:
        frames = frames[..., :3]
    if frames.shape[-1] != 3:
        raise VlmrmError(f"video {str(path)!r} frames have {frames.shape[-1]} channels; pass an RGB video")
    return frames.astype(np.uint8)


def first_detections(detected: np.ndarray, min_frames: int = 2) -> np.ndarray:
    """The first frame of each subgoal's first run of ``min_frames`` consecutive detections.

    Args:
        detected: bool [F, S], the detector's verdicts per frame.
        min_frames: frames a detection must last (>= 1).

    Returns:
        int64 [S]: that frame, or -1 where the subgoal never stays detected that long.

    Raises:
        VlmrmError: bad shape or ``min_frames``.
    """
    detected = np.asarray(detected, bool)
    if detected.ndim != 2:
        raise VlmrmError(f"detections of shape {detected.shape} are not [frames, subgoals]")
    if not isinstance(min_frames, (int, np.integer)) or min_frames < 1:
        raise VlmrmError(f"min_frames={min_frames!r} must be a positive number of frames, e.g. 2")
    frames = detected.shape[0]
    if frames < min_frames:
        return np.full(detected.shape[1], -1)
    # run[t, s]: detected in every frame t .. t + min_frames - 1
    run = np.ones((frames - min_frames + 1, detected.shape[1]), bool)
    for k in range(min_frames):
        run &= detected[k:frames - min_frames + 1 + k]
    return np.where(run.any(axis=0), np.argmax(run, axis=0), -1)


def subgoal_sequence(detected: np.ndarray, min_frames: int = 2) -> list[int]:
    """The subgoals seen in a video, in order of first debounced detection (ties: lower id first), each once.

    Args:
        detected: bool [F, S] (e.g. ``similarities > gamma``).
        min_frames: see :func:`first_detections`.

    Returns:
        subgoal ids.
    """
    first = first_detections(detected, min_frames)
    seen = np.flatnonzero(first >= 0)
    return [int(s) for s in seen[np.argsort(first[seen], kind="stable")]]


def extract_subgoal_sequence(similarities: np.ndarray, threshold: float, min_frames: int = 2) -> list[int]:
    """The expert's subgoal sequence from the detector's scores: :func:`subgoal_sequence` of ``similarities >
    threshold`` (Di Palo et al. 2023's rule, gamma = the detector's calibrated single-view threshold).

    Args:
        similarities: float [F, S], ``phi_I(frame) . phi_T(caption)``.
        threshold: gamma in [-1, 1].
        min_frames: debouncing, see :func:`first_detections`.
    """
    from vlmrm_jax.models.detection import check_threshold

    return subgoal_sequence(np.asarray(similarities) > check_threshold(threshold), min_frames)


__all__ = ["extract_subgoal_sequence", "first_detections", "read_video", "subgoal_sequence"]
