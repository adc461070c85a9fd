"""Weighted concatenation of backbones, e.g. ``yolo+hvf*0.5``.

Each block is L2-normalised (every backbone already returns unit rows), multiplied by its
weight, the blocks are concatenated and the result normalised. The cosine of two such vectors
is then the weight^2-weighted mean of the blocks' cosines, so a weight says how much a block's
similarity counts, independent of its dimension.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from embedder.base import Backbone
from embedder.batching import BatchedBackbone
from embedder.registry import block_name
from shopthelook.core.errors import BackboneError


class ConcatBackbone(BatchedBackbone):
    def __init__(self, blocks: Sequence[tuple[Backbone, float]]) -> None:
        if not blocks:
            raise BackboneError("a concatenated backbone needs at least one block")
        for backbone, weight in blocks:
            if not weight > 0:
                raise BackboneError(f"backbone {backbone.name!r}: weight {weight} must be positive")
        self.blocks = [(b, float(w)) for b, w in blocks]
        self.name = "+".join(block_name(b.name, w) for b, w in self.blocks)
        self.dim = sum(b.dim for b, _ in self.blocks)
        limits = [getattr(b, "max_image_pixels", None) for b, _ in self.blocks]
        self.max_image_pixels = min([v for v in limits if v] or [self.max_image_pixels])

    def weights_fingerprints(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for backbone, _ in self.blocks:
            merged.update(backbone.weights_fingerprints())
        return merged

    def _embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        parts = []
        for backbone, weight in self.blocks:
            if isinstance(backbone, BatchedBackbone):
                vectors = backbone.embed_loaded(images)  # images are loaded once for all blocks
            else:
                vectors = backbone.embed_images(images, batch_size=max(1, len(images)))
            parts.append(weight * vectors)
        return np.concatenate(parts, axis=1)
