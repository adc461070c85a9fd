"""The learned-head slot between a backbone and the catalog (identity unless a head is given).

A head maps backbone embeddings [n, d_in] to the style space [n, d_out]. The SAME head
(seed 001) is one implementation; it saves to a folder with ``head.json`` (manifest) and
``head.safetensors`` and is loaded by :func:`load_head`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from embedder.base import Backbone, ImageLike, l2_normalize
from shopthelook.core.errors import HeadError


class Head(ABC):
    #: a short id recorded in catalog manifests ("identity", "same:<hash>")
    head_id: str
    #: the backbone name the head was trained on ("" = any)
    backbone: str
    dim_in: int
    dim_out: int

    @abstractmethod
    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        """float32 [n, dim_out], L2-normalised."""


class IdentityHead(Head):
    head_id = "identity"
    backbone = ""

    def __init__(self, dim: int) -> None:
        self.dim_in = self.dim_out = dim

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        return l2_normalize(embeddings)


HEAD_LOADERS: dict[str, type] = {}


def register_head(kind: str):
    """Class decorator: ``load_head`` dispatches on the manifest's ``kind``."""

    def deco(cls):
        HEAD_LOADERS[kind] = cls
        return cls

    return deco


class Embedder:
    """A backbone followed by a head: what the catalog and the pipeline embed with."""

    def __init__(self, backbone: Backbone, head: Head | None = None) -> None:
        if head is not None and head.dim_in != backbone.dim:
            raise HeadError(
                f"head {head.head_id} expects {head.dim_in}-d input but backbone "
                f"{backbone.name!r} gives {backbone.dim}-d; train a head on this backbone"
            )
        if head is not None and head.backbone and head.backbone != backbone.name:
            raise HeadError(
                f"head {head.head_id} was trained on backbone {head.backbone!r}, "
                f"not {backbone.name!r}"
            )
        self.backbone = backbone
        self.head = head or IdentityHead(backbone.dim)

    @property
    def name(self) -> str:
        return self.backbone.name

    @property
    def head_id(self) -> str:
        return self.head.head_id

    def weights_fingerprints(self) -> dict[str, str]:
        return self.backbone.weights_fingerprints()

    @property
    def dim(self) -> int:
        return self.head.dim_out

    def embed_images(
        self, images: Sequence[ImageLike], *, batch_size: int = 16, show_progress: bool = False
    ) -> np.ndarray:
        raw = self.backbone.embed_images(images, batch_size=batch_size, show_progress=show_progress)
        return self.head.transform(raw)

    def embed_backbone_vectors(self, vectors: np.ndarray) -> np.ndarray:
        return self.head.transform(vectors)
