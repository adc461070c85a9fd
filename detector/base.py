"""The detector stage's interface: a scene image in, the objects worth shopping for out.

Every implementation returns :class:`shopthelook.core.types.Detection` objects sorted by score
(highest first), at most ``max_objects`` of them, with boxes inside the image; the shared
contract test in tests/test_detector.py checks this for each registered kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

from PIL import Image

from shopthelook.core.types import Box, Detection


class Detector(ABC):
    """Finds objects in a scene and names their catalog categories."""

    #: registry name of the implementation, e.g. "yolo"
    name: str = "detector"
    #: the most objects one call returns
    max_objects: int = 10

    @abstractmethod
    def detect(self, image: Image.Image) -> list[Detection]:
        """Objects in ``image`` (upright RGB), best first, at most ``max_objects``."""

    def detect_many(self, images: Iterable[Image.Image]) -> list[list[Detection]]:
        """Detections for each image in turn (implementations may batch)."""
        return [self.detect(image) for image in images]

    def name_region(self, image: Image.Image, box: Box) -> Detection | None:
        """The object in a box the user drew, named by this detector's own classifier;
        None when the detector has none (the box then takes an overlapping detection's)."""
        return None


# -- box geometry shared by implementations and by user regions ---------------------------


def intersection(a: Box, b: Box) -> float:
    w = min(a.x2, b.x2) - max(a.x1, b.x1)
    h = min(a.y2, b.y2) - max(a.y1, b.y1)
    return w * h if w > 0 and h > 0 else 0.0


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    inter = intersection(a, b)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def covered_share(inner: Box, outer: Box) -> float:
    """The share of ``inner``'s area that lies inside ``outer``."""
    return intersection(inner, outer) / inner.area if inner.area > 0 else 0.0


def best_first(detections: Sequence[Detection], max_objects: int) -> list[Detection]:
    """Sorted by score descending (stable for ties), cut to ``max_objects``."""
    return sorted(detections, key=lambda d: -d.score)[: max(0, max_objects)]


def drop_same_category_duplicates(
    detections: Sequence[Detection], iou_threshold: float = 0.8
) -> list[Detection]:
    """Keep the best of near-identical boxes of one category.

    Non-maximum suppression runs per detector label, so YOLO may report one glass as both
    "cup" and "wine glass", or one bag as "handbag" and "backpack"; both labels map to the
    same catalog category, and two boxes searching it would show the same products twice.
    """
    kept: list[Detection] = []
    for det in best_first(detections, len(detections)):
        key = det.category if det.category is not None else det.label
        if any(
            (k.category if k.category is not None else k.label) == key
            and box_iou(k.box, det.box) > iou_threshold
            for k in kept
        ):
            continue
        kept.append(det)
    return kept
