"""The batching loop every backbone shares: load, batch, embed, normalise.

A backbone subclasses :class:`BatchedBackbone` and implements ``_embed_batch`` on a list of
upright RGB PIL images; loading paths (with the project's safe ``load_image``), batching,
the progress bar and the empty-input case are handled here once.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from embedder.base import Backbone, ImageLike, l2_normalize
from shopthelook.core.errors import BackboneError
from shopthelook.core.images import DEFAULT_MAX_PIXELS, load_image


class BatchedBackbone(Backbone):
    #: images over this many pixels are refused by load_image (Settings.max_image_pixels)
    max_image_pixels: int = DEFAULT_MAX_PIXELS

    def load(self, image: ImageLike) -> Image.Image:
        """An upright RGB PIL image; a bad file raises ImageError naming it."""
        return load_image(image, max_pixels=self.max_image_pixels)

    def embed_images(
        self, images: Sequence[ImageLike], *, batch_size: int = 16, show_progress: bool = False
    ) -> np.ndarray:
        if isinstance(images, (str, Path, Image.Image)):
            images = [images]  # one image given where a sequence was expected
        elif not isinstance(images, Sequence):
            images = list(images)
        if batch_size < 1:
            raise BackboneError(f"backbone {self.name!r}: batch_size must be at least 1")
        out = np.zeros((len(images), self.dim), dtype=np.float32)
        with tqdm(total=len(images), desc=self.name, unit="img", disable=not show_progress) as bar:
            for start in range(0, len(images), batch_size):
                batch = [self.load(x) for x in images[start : start + batch_size]]
                out[start : start + len(batch)] = self.embed_loaded(batch)
                bar.update(len(batch))
        return out

    def embed_loaded(self, images: list[Image.Image]) -> np.ndarray:
        """float32 [len(images), dim], L2-normalised, for already loaded RGB images."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.asarray(self._embed_batch(images), dtype=np.float32)
        if vectors.shape != (len(images), self.dim):
            raise AssertionError(
                f"{type(self).__name__} returned {vectors.shape}, expected {(len(images), self.dim)}"
            )
        return l2_normalize(vectors)

    @abstractmethod
    def _embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        """[len(images), dim] vectors (normalised by the caller) for RGB PIL images."""
