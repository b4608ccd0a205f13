"""A toy caption source for fast tests of the dataset format and of contrastive training: 32 px frames of a red or
a blue square (or both) on grey, captioned by colour, no rendering or physics involved."""

from __future__ import annotations

import numpy as np

from vlmrm_jax.datasets import CaptionSet, Concept, FrameBatch

TOY_CAPTIONS = CaptionSet(concepts=(
    Concept("red", ("a red square", "a square that is red"), "a red square"),
    Concept("blue", ("a blue square", "a square that is blue"), "a blue square"),
    Concept("shape", ("a square on grey",)),
), baseline="shape")


class ToySource:
    """Frames with a red square (label red), a blue one (label blue), or both; deterministic per seed."""

    env = "toy"
    captions = TOY_CAPTIONS
    state_names = ("red", "blue")
    modes = ("single", "both")

    def __init__(self, image_size: int = 32):
        self.image_size = image_size

    @property
    def config(self) -> dict:
        return {"image_size": self.image_size}

    def generate(self, num_frames: int, seed: int, chunk_size: int = 256):
        rng = np.random.default_rng(seed)
        size = self.image_size
        for start in range(0, num_frames, chunk_size):
            n = min(chunk_size, num_frames - start)
            images = np.full((n, size, size, 3), 128, np.uint8)
            both = rng.random(n) < 0.2
            red = rng.random(n) < 0.5
            red_on, blue_on = red | both, ~red | both
            for i in range(n):
                for on, colour in ((red_on[i], (220, 30, 30)), (blue_on[i], (30, 30, 220))):
                    if on:
                        y, x = rng.integers(0, size - 10, 2)
                        images[i, y:y + 10, x:x + 10] = colour
            labels = np.stack([red_on, blue_on, np.ones(n, bool)], axis=-1)
            yield FrameBatch(images, labels, np.stack([red_on, blue_on], -1).astype(np.float32),
                             both.astype(np.int32))
