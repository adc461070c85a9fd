"""The re-ranking stage's interface: re-order one object's FAISS candidates.

The pipeline hands a ranker one RankContext per detected object; the default ranker keeps
the visual order. The LightGBM ranker (ranker/lgbm.py) implements the same interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from shopthelook.core.types import Detection, ProductHit


@dataclass
class RankContext:
    #: who is looking (None = anonymous: the population profile applies)
    user_id: str | None
    #: the object whose candidates are ranked
    detection: Detection
    #: the object's crop embedding in the catalog's space, float32 [d]
    query_embedding: np.ndarray
    #: the scene, when known (web scene id, batch scene id)
    scene_id: str | None = None
    #: scene category when known (e.g. IKEA room_category)
    scene_category: str | None = None
    #: every object of the scene with its embedding, for "does it fit the room" features
    scene_objects: list[Detection] = field(default_factory=list)
    scene_embeddings: np.ndarray | None = None
    #: an adjective / style direction the person asked for
    adjective: str | None = None


class Ranker(ABC):
    name: str = "ranker"
    #: why a requested ranker could not be used and this one stands in (None = as asked)
    fallback_reason: str | None = None

    @abstractmethod
    def rank(self, context: RankContext, candidates: list[ProductHit]) -> list[ProductHit]:
        """Return the candidates re-ordered (scores may change; never drop or add items)."""


class VisualOrderRanker(Ranker):
    """Keeps FAISS's order: visual similarity only."""

    name = "visual"

    def rank(self, context: RankContext, candidates: list[ProductHit]) -> list[ProductHit]:
        return sorted(candidates, key=lambda h: -h.score)
