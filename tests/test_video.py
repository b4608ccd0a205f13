"""Rollout videos: caption band, even MP4 sizes, read back frame by frame, and ffmpeg started safely beside JAX."""

import warnings

import imageio.v2 as imageio
import jax.numpy as jnp
import numpy as np
import pytest

from vlmrm_jax.eval.video import caption_frames, write_video


def frames(t=6, h=33, w=47):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_caption_band_on_top_keeps_the_frame_below():
    f = frames()
    out = caption_frames(f, [f"r={i}" for i in range(len(f))])
    band = out.shape[1] - f.shape[1]
    assert out.shape == (6, 33 + band, 47, 3) and band == 14
    np.testing.assert_array_equal(out[:, band:], f)
    with pytest.raises(ValueError, match="5 captions for 6 frames"):
        caption_frames(f, ["x"] * 5)


def test_mp4_after_jax_started_reads_back_without_a_fork_warning(tmp_path, monkeypatch):
    jnp.zeros(1).block_until_ready()  # JAX's backend is up: it warns on any fork with Python code before exec
    smooth = np.repeat(np.linspace(0, 255, 47, dtype=np.uint8)[None, None, :, None], 33, axis=1)
    video = np.repeat(smooth, 6, axis=0).repeat(3, axis=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = write_video(tmp_path / "v.mp4", video, fps=10)
    assert not [w for w in caught if "fork" in str(w.message)], [str(w.message) for w in caught]
    monkeypatch.setenv("IMAGEIO_FFMPEG_NO_PREVENT_SIGINT", "1")  # the same for the reader's ffmpeg
    back = np.stack(imageio.mimread(path))
    assert back.shape == (6, 34, 48, 3)  # padded to even sizes
    assert np.abs(back[:, :33, :47].astype(int) - video.astype(int)).mean() < 8  # lossy H.264, same picture


def test_gif_keeps_frame_count_and_size(tmp_path):
    f = frames(t=3)
    back = np.stack(imageio.mimread(write_video(tmp_path / "v.gif", f)))[..., :3]
    assert back.shape == f.shape
