"""Rollout videos with a caption (e.g. the per-frame CLIP reward) drawn on each frame."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, Sequence

import imageio.v2 as imageio
import numpy as np
from PIL import Image, ImageDraw


def caption_frames(frames: np.ndarray, captions: Sequence[str]) -> np.ndarray:
    """Draws one caption per frame in a dark band at the top.

    Args:
        frames: uint8 [T, H, W, 3].
        captions: T strings.

    Returns:
        uint8 [T, H + band, W, 3] with the band (about 8% of H, at least 14 px) above each frame.
    """
    frames = np.asarray(frames)
    if len(captions) != len(frames):
        raise ValueError(f"{len(captions)} captions for {len(frames)} frames")
    band = max(14, frames.shape[1] // 12)
    out = []
    for frame, text in zip(frames, captions):
        canvas = Image.new("RGB", (frame.shape[1], frame.shape[0] + band), (20, 20, 20))
        canvas.paste(Image.fromarray(frame), (0, band))
        ImageDraw.Draw(canvas).text((3, 1), text, fill=(255, 255, 255))
        out.append(np.asarray(canvas))
    return np.stack(out)


#: imageio-ffmpeg starts ffmpeg with ``preexec_fn=os.setpgrp`` (so Ctrl-C reaches Python, not ffmpeg) unless this
#: variable is set: Python code between fork and exec, which can hang a multithreaded process (imageio-ffmpeg issue
#: #58) and makes JAX warn "os.fork() was called ... will likely lead to a deadlock" once its backend has started.
_NO_PREEXEC = "IMAGEIO_FFMPEG_NO_PREVENT_SIGINT"


@contextlib.contextmanager
def _ffmpeg_without_preexec() -> Iterator[None]:
    """Sets ``IMAGEIO_FFMPEG_NO_PREVENT_SIGINT=1`` while ffmpeg starts (a user's own value is kept), then restores
    the environment."""
    before = os.environ.get(_NO_PREEXEC)
    if before is None:
        os.environ[_NO_PREEXEC] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(_NO_PREEXEC, None)


def write_video(path: str | Path, frames: np.ndarray, fps: float = 1 / 0.015 / 2) -> Path:
    """Writes uint8 [T, H, W, 3] frames as MP4 (H.264 via imageio-ffmpeg) or GIF, by the suffix of ``path``.

    The default fps (~33) plays a 0.015 s-per-step humanoid episode at half speed. MP4 sizes are padded to even.
    ffmpeg is started by a plain fork-exec, with no Python code in the child (safe beside JAX's threads); a Ctrl-C
    while the video is written therefore stops ffmpeg too, and the video is not written.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if path.suffix == ".gif":
        imageio.mimsave(path, list(frames), duration=1000 / fps, loop=0)
    else:
        pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
        with _ffmpeg_without_preexec():
            imageio.mimsave(path, list(frames), fps=fps, macro_block_size=1)
    return path
