"""Session-wide settings and fixtures shared by the test modules.

The suite's programs are tiny, so its time is almost all XLA compiling: the tests (and the processes they start,
which inherit the environment) compile with LLVM's optimisations off, about a fifth less time for the main-job
tests (measured 2026-12-03 on 2 cores, each run beside a different background job: 559 s against 705 s for
tests/test_main_job.py and tests/test_sac.py).
Set ``XLA_FLAGS`` yourself to override; this runs before any test module imports JAX.
"""

from __future__ import annotations

import os

import pytest

#: Appended to ``XLA_FLAGS`` unless it already sets the optimisation level.
FAST_COMPILE_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE_FLAGS}".strip()


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
