"""Session-wide fixtures shared by the test modules."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    """A tiny random CLIP (32 px input, patch 8, width 32, 2 layers, 2 heads, 16-d embeddings) in the Hugging Face
    format, created once per session; load it with ``CLIP.load(str(tiny_clip_dir))``."""
    from vlmrm_jax.models import create_tiny_clip

    return create_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="session")
def tiny_clip(tiny_clip_dir):
    """The CLIP in ``tiny_clip_dir``, loaded once per session."""
    from vlmrm_jax.models import CLIP

    return CLIP.load(str(tiny_clip_dir))
