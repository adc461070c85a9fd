"""The one small interface every embedding backbone implements.

A backbone maps images into a float32 space where the dot product of L2-normalised rows is
the visual similarity. Implementations register a factory in ``embedder.registry``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from shopthelook.core.errors import BackboneError

ImageLike = Image.Image | str | Path


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, eps)).astype(np.float32)


class Backbone(ABC):
    #: the registry name that recreates this backbone, recorded in catalog manifests
    name: str
    #: embedding dimension
    dim: int

    @abstractmethod
    def embed_images(
        self, images: Sequence[ImageLike], *, batch_size: int = 16, show_progress: bool = False
    ) -> np.ndarray:
        """float32 [n, dim], each row L2-normalised. Paths are read with load_image."""

    def weights_fingerprints(self) -> dict[str, str]:
        """{block name: fingerprint of the weights it embeds with}; empty for weight-free
        backbones. Catalog manifests record it; a mismatch later means another space."""
        return {}

    @property
    def has_text(self) -> bool:
        return False

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise BackboneError(
            f"backbone {self.name!r} has no text tower; use a clip:<model>/<weights> backbone"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"
