"""The ultralytics YOLO detector: COCO labels mapped to catalog categories by the taxonomy."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from detector.base import Detector, best_first, drop_same_category_duplicates
from detector.registry import register_detector
from shopthelook.core.config import apply_threads
from shopthelook.core.errors import ConfigError
from shopthelook.core.images import to_rgb
from shopthelook.core.types import Box, Detection
from shopthelook.core.yolo_model import load_yolo, model_lock

if TYPE_CHECKING:
    from shopthelook.core.config import Settings
    from shopthelook.core.taxonomy import Taxonomy

__all__ = ["YoloDetector", "to_detections"]

log = logging.getLogger(__name__)

#: raw boxes asked of ultralytics per image; labels without a category are dropped afterwards,
#: so this is well above max_objects
_RAW_BOXES = 100


class YoloDetector(Detector):
    """Objects found by an ultralytics YOLO model, each with its catalog category.

    Objects whose label searches no catalog category (COCO's "car", "laptop", ...) are
    dropped unless ``keep_unmapped``; then they come with ``category=None``.
    """

    name = "yolo"

    def __init__(
        self,
        weights: str | Path,
        taxonomy: Taxonomy,
        *,
        confidence: float = 0.25,
        iou: float = 0.5,
        image_size: int = 640,
        max_objects: int = 10,
        threads: int = 2,
        keep_unmapped: bool = False,
        duplicate_iou: float = 0.8,
        device: str | None = None,
        warm_up: bool = True,
    ) -> None:
        _check(0.0 <= confidence <= 1.0, f"detector confidence {confidence}: must be within 0..1")
        _check(0.0 < iou <= 1.0, f"detector iou {iou}: must be within 0..1")
        _check(image_size >= 32, f"detector image_size {image_size}: must be at least 32 pixels")
        _check(max_objects >= 1, f"detector max_objects {max_objects}: must be at least 1")
        _check(threads >= 1, f"detector threads {threads}: must be at least 1")
        self.weights = str(weights)
        self.taxonomy = taxonomy
        self.confidence = float(confidence)
        self.iou = float(iou)
        self.image_size = int(image_size)
        self.max_objects = int(max_objects)
        self.threads = int(threads)
        self.keep_unmapped = keep_unmapped
        self.duplicate_iou = float(duplicate_iou)
        self.device = device
        self.model = load_yolo(weights)
        self.labels: dict[int, str] = {int(k): str(v) for k, v in dict(self.model.names).items()}
        # Importing ultralytics sets OMP_NUM_THREADS=1, and its first predict() picks the device
        # and resets torch's threads: one tiny predict here makes every later call run at
        # ``threads`` and keeps that set-up cost out of the first real request.
        apply_threads(self.threads)
        if warm_up:
            self._predict([Image.new("RGB", (64, 64), (127, 127, 127))])

    def __repr__(self) -> str:
        return (
            f"YoloDetector({self.weights!r}, confidence={self.confidence}, iou={self.iou}, "
            f"image_size={self.image_size}, max_objects={self.max_objects})"
        )

    def detect(self, image: Image.Image) -> list[Detection]:
        return self.detect_with_results(image)[0]

    def detect_many(self, images: Iterable[Image.Image]) -> list[list[Detection]]:
        upright = [_rgb(image) for image in images]
        if not upright:
            return []
        results = self._predict(upright)
        return [self.detections_from(r, im.size) for r, im in zip(results, upright, strict=True)]

    def detect_with_results(
        self, image: Image.Image, raw_confidence: float | None = None
    ) -> tuple[list[Detection], Any]:
        """Detections and ultralytics' raw ``Results`` (boxes of every label, for reuse).

        ``raw_confidence`` below ``confidence`` keeps the fainter boxes in the raw results
        (region proposals for another stage) without changing the detections: NMS is greedy by
        score, so a box above ``confidence`` is only ever suppressed by a stronger one."""
        image = _rgb(image)
        result = self._predict([image], raw_confidence)[0]
        return self.detections_from(result, image.size), result

    def detections_from(self, result: Any, size: tuple[int, int]) -> list[Detection]:
        """Detections from one ultralytics ``Results`` of an image of ``size`` (width, height)."""
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return []
        sure = boxes.conf.cpu().numpy() >= self.confidence
        return to_detections(
            boxes.xyxy.cpu().numpy()[sure].tolist(),
            boxes.conf.cpu().numpy()[sure].tolist(),
            boxes.cls.cpu().numpy().astype(int)[sure].tolist(),
            labels=self.labels,
            size=size,
            taxonomy=self.taxonomy,
            keep_unmapped=self.keep_unmapped,
            duplicate_iou=self.duplicate_iou,
            max_objects=self.max_objects,
        )

    def _predict(self, images: Sequence[Image.Image], confidence: float | None = None) -> list[Any]:
        faint = confidence is not None and confidence < self.confidence
        with model_lock(self.model):
            try:
                return self.model.predict(
                    list(images),
                    conf=confidence if faint else self.confidence,
                    iou=self.iou,
                    imgsz=self.image_size,
                    max_det=_RAW_BOXES * 3 if faint else _RAW_BOXES,
                    device=self.device,
                    verbose=False,
                )
            finally:
                apply_threads(self.threads)


def to_detections(
    xyxy: Sequence[Sequence[float]],
    scores: Sequence[float],
    classes: Sequence[int],
    *,
    labels: Mapping[int, str],
    size: tuple[int, int],
    taxonomy: Taxonomy,
    keep_unmapped: bool = False,
    duplicate_iou: float = 0.8,
    max_objects: int = 10,
) -> list[Detection]:
    """Raw detector boxes (pixels) -> categorised Detections, best first, at most max_objects.

    Boxes are clipped to the image, empty ones dropped, labels without a catalog category
    dropped unless ``keep_unmapped``, and near-identical boxes of one category merged.
    """
    width, height = size
    found: list[Detection] = []
    for (x1, y1, x2, y2), score, cls in zip(xyxy, scores, classes, strict=True):
        label = labels.get(int(cls), str(cls))
        category = taxonomy.category_for_label(label)
        if category is None and not keep_unmapped:
            continue
        box = Box(
            max(0.0, float(x1)),
            max(0.0, float(y1)),
            min(float(width), float(x2)),
            min(float(height), float(y2)),
        )
        if box.area <= 0:
            continue
        found.append(
            Detection(
                box=box,
                label=label,
                score=float(score),
                category=category,
                search_categories=taxonomy.search_categories(label),
                source="detector",
            )
        )
    found = drop_same_category_duplicates(found, duplicate_iou)
    return best_first(found, max_objects)


def _rgb(image: Image.Image) -> Image.Image:
    if not isinstance(image, Image.Image):
        raise TypeError(f"detect() takes a PIL image, not {type(image).__name__}")
    return image if image.mode == "RGB" else to_rgb(image)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@register_detector("yolo")
def _yolo_from_settings(settings: Settings, taxonomy: Taxonomy) -> YoloDetector:
    return YoloDetector(
        settings.detector_weights,
        taxonomy,
        confidence=settings.detection_confidence,
        iou=settings.detection_iou,
        image_size=settings.detection_image_size,
        max_objects=settings.max_objects,
        threads=settings.threads,
    )
