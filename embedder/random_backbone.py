"""The ``random`` backbone: the chance baseline every real backbone must beat.

Each image gets a pseudo-random unit vector seeded by a hash of its decoded pixels, so the
same picture always gets the same vector (a re-encoded or resized copy does not) and two
different pictures are unrelated. Retrieval with it measures what the category filter alone
achieves.
"""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

from embedder.batching import BatchedBackbone

RANDOM_DIM = 256


def pixel_seed(image: Image.Image) -> int:
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    digest.update(image.tobytes())
    return int.from_bytes(digest.digest(), "little")


class RandomBackbone(BatchedBackbone):
    def __init__(self, dim: int = RANDOM_DIM) -> None:
        self.name = "random"
        self.dim = dim

    def _embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        return np.stack(
            [np.random.default_rng(pixel_seed(img)).standard_normal(self.dim) for img in images]
        ).astype(np.float32)
