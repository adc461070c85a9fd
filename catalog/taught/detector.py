"""The catalog-taught detector: proposals named by the region classifier.

Every proposal gets its most probable non-background category; proposals scoring under
``min_score`` are dropped, the rest go through per-category NMS, at most ``per_category``
objects of one category are kept (a room has one rug, not five boxes on it), and the best
``max_objects`` are returned. Registered as detector kinds ``taught`` (a fitted folder, the
``taught_detector`` setting) and ``zero-shot`` (the ImageNet / COCO mapping alone, no fit).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from catalog.taught.files import check_against_catalog, detector_folder, read_detector
from catalog.taught.model import RegionClassifier, fit_classifier
from catalog.taught.regions import RegionConfig, RegionFeaturizer
from detector.base import Detector, best_first, box_iou
from detector.registry import register_detector
from shopthelook.core.errors import ConfigError
from shopthelook.core.images import to_rgb
from shopthelook.core.types import Box, Detection

if TYPE_CHECKING:
    from shopthelook.core.config import Settings
    from shopthelook.core.taxonomy import Taxonomy

log = logging.getLogger(__name__)


Likeness = Callable[[np.ndarray, str], np.ndarray]


class TaughtDetector(Detector):
    name = "taught"

    def __init__(
        self,
        featurizer: RegionFeaturizer,
        classifier: RegionClassifier,
        taxonomy: Taxonomy,
        *,
        max_objects: int = 10,
        min_score: float = 0.3,
        per_category: int = 2,
        nms_iou: float = 0.4,
        min_area: float = 0.0,
        likeness: Likeness | None = None,
        likeness_weight: float = 0.0,
    ) -> None:
        if max_objects < 1:
            raise ConfigError(f"detector max_objects {max_objects}: must be at least 1")
        self.featurizer, self.classifier, self.taxonomy = featurizer, classifier, taxonomy
        self.max_objects, self.min_score = int(max_objects), float(min_score)
        self.per_category, self.nms_iou = int(per_category), float(nms_iou)
        #: a region smaller than this share of the scene is not an object: its RoI features
        #: come from less than one cell of the feature map
        self.min_area = float(min_area)
        #: a region's likeness to its category's best-matching product photo (cosine of the
        #: visual features) is added, times ``likeness_weight``, to the log probability that
        #: orders the regions: of two regions named "lamp", the one that looks like a
        #: lamp the catalog sells wins over a window around it
        self.likeness = likeness if likeness_weight > 0 else None
        self.likeness_weight = float(likeness_weight)
        self.name = "taught" if classifier.design != "zero-shot" else "zero-shot"

    def __repr__(self) -> str:
        return (
            f"TaughtDetector({self.classifier.design}, {len(self.classifier.categories)} "
            f"categories, min_score={self.min_score}, max_objects={self.max_objects})"
        )

    def region_probabilities(
        self, image: Image.Image, yolo_raw: tuple[np.ndarray, ...] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Proposal boxes [n, 4] and their class probabilities [n, 1 + categories]."""
        boxes, probs, _ = self._regions(image, yolo_raw)
        return boxes, probs

    def _regions(self, image: Image.Image, yolo_raw) -> tuple[np.ndarray, ...]:
        boxes, conf, columns = self.featurizer.propose(image, yolo_raw)
        x = self.featurizer.features(image, boxes, conf, columns)
        return boxes, self.classifier.predict_proba(x), x[:, self.featurizer.layout.visual]

    def detect(
        self,
        image: Image.Image,
        yolo_raw: tuple[np.ndarray, ...] | None = None,
        *,
        limit: int | None = None,
    ) -> list[Detection]:
        """``yolo_raw``: (xyxy, conf, cls) of a YOLO pass already made over this image;
        ``limit``: objects returned (default ``max_objects``)."""
        image = _rgb(image)
        boxes, probs, visual = self._regions(image, yolo_raw)
        return self.select(boxes, probs, image.size, visual, limit=limit)

    def select(
        self,
        boxes: np.ndarray,
        probs: np.ndarray,
        size: tuple[int, int],
        visual: np.ndarray | None = None,
        *,
        limit: int | None = None,
    ) -> list[Detection]:
        """Per-category NMS, the per-category cap and the best ``max_objects``; regions in
        order of probability, or of probability and likeness (``visual``: their features)."""
        categories = self.classifier.categories
        if len(boxes) == 0 or not categories:
            return []
        best = probs[:, 1:].argmax(axis=1)
        score = probs[np.arange(len(probs)), best + 1]
        order = self._order(score, best, visual)
        kept: list[Detection] = []
        per: dict[str, int] = {}
        width, height = size
        limit = self.max_objects if limit is None else int(limit)
        for i in order:
            if len(kept) >= limit:
                break
            if score[i] < self.min_score:
                continue
            category = categories[int(best[i])]
            x1, y1, x2, y2 = (float(v) for v in boxes[i])
            box = Box(max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2))
            small = box.area < self.min_area * width * height
            if box.area <= 0 or small or per.get(category, 0) >= self.per_category:
                continue
            if any(d.category == category and box_iou(d.box, box) > self.nms_iou for d in kept):
                continue
            per[category] = per.get(category, 0) + 1
            found = float(min(1.0, score[i]))
            kept.append(Detection(box, category, found, category, self.searched(category)))
        return best_first(kept, limit)

    def _order(self, score: np.ndarray, best: np.ndarray, visual: np.ndarray | None) -> np.ndarray:
        """Regions best first: by probability, plus ``likeness_weight`` x likeness."""
        if self.likeness is None or visual is None:
            return np.argsort(-score, kind="stable")
        key = np.log(score + 1e-3)
        live = score >= self.min_score
        unit = visual / (np.linalg.norm(visual, axis=1, keepdims=True) + 1e-9)
        for column in np.unique(best[live]):
            rows = np.nonzero(live & (best == column))[0]
            category = self.classifier.categories[int(column)]
            key[rows] += self.likeness_weight * self.likeness(unit[rows], category)
        return np.argsort(-key, kind="stable")

    def searched(self, category: str) -> tuple[str, ...]:
        """``category`` first, then those the taxonomy has its objects search too (a bed
        shows bedding, a chair may be an armchair: ``also_detector_labels``)."""
        rule = next((r for r in self.taxonomy.rules if r.name == category), None)
        labels = rule.detector_labels if rule else ()
        also = [c for label in labels for c in self.taxonomy.search_categories(label)]
        return tuple(dict.fromkeys([category, *also]))

    def name_region(self, image: Image.Image, box: Box) -> Detection | None:
        """The category of a box the user drew, by the same classifier (None: background)."""
        image = _rgb(image)
        boxes = np.array([[box.x1, box.y1, box.x2, box.y2]], np.float32)
        x = self.featurizer.features(image, boxes, np.zeros(1), np.full(1, -2))
        p = self.classifier.predict_proba(x)[0]
        if not self.classifier.categories:
            return None
        best = int(p[1:].argmax())
        category = self.classifier.categories[best]
        score = float(p[best + 1])
        return Detection(box, category, score, category, self.searched(category), source="user")


def _rgb(image: Image.Image) -> Image.Image:
    if not isinstance(image, Image.Image):
        raise TypeError(f"detect() takes a PIL image, not {type(image).__name__}")
    return image if image.mode == "RGB" else to_rgb(image)


def zero_shot_detector(
    settings: Settings, taxonomy: Taxonomy, categories: list[str] | None = None
) -> TaughtDetector:
    """The ImageNet-head / COCO mapping alone over ``categories`` (default: every category
    the taxonomy gives ImageNet or detector labels)."""
    cats = categories or [r.name for r in taxonomy.rules if r.imagenet_labels or r.detector_labels]
    featurizer = RegionFeaturizer(
        cats,
        taxonomy,
        weights=settings.detector_weights,
        config=RegionConfig(),
        threads=settings.threads,
        runtime=settings.embed_runtime,
    )
    classifier = fit_classifier(np.zeros((0, 0)), np.zeros(0, int), cats, design="zero-shot")
    return TaughtDetector(
        featurizer,
        classifier,
        taxonomy,
        max_objects=settings.max_objects,
        min_score=settings.taught_min_score,
        per_category=settings.taught_per_category,
        min_area=settings.taught_min_area,
    )


@register_detector("zero-shot")
def _zero_shot_from_settings(settings: Settings, taxonomy: Taxonomy) -> TaughtDetector:
    return zero_shot_detector(settings, taxonomy)


@register_detector("taught")
def _taught_from_settings(settings: Settings, taxonomy: Taxonomy) -> TaughtDetector:
    if not settings.taught_detector:
        raise ConfigError(
            "detector 'taught' needs a fitted detector folder: set taught_detector, or let the "
            "pipeline use the catalog's own (shopthelook catalog fit-detector --catalog DIR)"
        )
    return load_detector_folder(settings.taught_detector, settings, taxonomy)


def load_detector_folder(folder: str | Path, settings, taxonomy, catalog=None):
    """The TaughtDetector saved in ``folder`` (checked against ``catalog`` when given)."""
    fitted = read_detector(folder)
    if catalog is not None:
        check_against_catalog(fitted, catalog, settings.detector_weights)
    if fitted.classifier.design == "hybrid":  # a blend chosen at serving time, not fitted
        fitted.classifier.mix = settings.taught_mix
    featurizer = RegionFeaturizer(
        fitted.classifier.categories,
        taxonomy,
        weights=settings.detector_weights,
        config=fitted.region,
        threads=settings.threads,
        runtime=settings.embed_runtime,
    )
    use_likeness = catalog is not None and settings.taught_likeness > 0
    return TaughtDetector(
        featurizer,
        fitted.classifier,
        taxonomy,
        max_objects=settings.max_objects,
        min_score=settings.taught_min_score,
        per_category=settings.taught_per_category,
        min_area=settings.taught_min_area,
        likeness=catalog_likeness(catalog, featurizer) if use_likeness else None,
        likeness_weight=settings.taught_likeness,
    )


def load_catalog_detector(catalog, settings, taxonomy):
    """The catalog's own fitted detector, checked against it (CatalogError: refit); with
    ``taught_mode = "complement"`` it only adds what the COCO detector cannot see."""
    from catalog.taught.garment_files import with_garments

    taught = load_detector_folder(detector_folder(catalog.path), settings, taxonomy, catalog)
    if settings.taught_mode != "complement":
        found = taught
    else:
        from detector import create_detector

        found = ComplementDetector(
            create_detector(settings, taxonomy, kind="yolo"),
            taught,
            base_per_category=settings.taught_base_per_category,
            taught_candidates=settings.taught_candidates,
        )
    # a fashion catalog's garment model replaces each person by the garments it wears
    found, note = with_garments(found, catalog, settings)
    if note:
        log.warning(note)
    return found


def catalog_likeness(catalog, featurizer) -> Likeness | None:
    """Each region's cosine with its category's nearest product in the catalog, when the
    catalog's vectors are the regions' own features (the same EfficientNet, no head);
    else None: regions are then ordered by probability alone."""
    headless = catalog.head in ("", "identity")
    same_space = (
        catalog.backbone == featurizer.config.backbone
        and headless
        and catalog.dim == featurizer.layout.visual.stop
    )
    if not same_space:
        log.info(
            "catalog space %s%s is not the regions' %s: taught regions are ordered by "
            "probability alone",
            catalog.backbone,
            "" if headless else f" + {catalog.head}",
            featurizer.config.backbone,
        )
        return None

    def likeness(unit: np.ndarray, category: str) -> np.ndarray:
        found = catalog.search(unit, category, 1)
        return np.array([row[0][1] if row else 0.0 for row in found], np.float32)

    return likeness


class ComplementDetector(Detector):
    """The COCO detector's objects, plus taught objects of the categories none of them
    searches (lamps, rugs, storage...): COCO's tight boxes stay where it has a label."""

    name = "taught-complement"

    def __init__(
        self,
        base: Detector,
        taught: TaughtDetector,
        base_per_category: int = 0,
        taught_candidates: int | None = None,
    ) -> None:
        self.base, self.taught = base, taught
        self.max_objects = taught.max_objects
        #: COCO objects of one category before the taught ones (0: all of them)
        self.base_per_category = int(base_per_category)
        #: taught objects looked at before those of categories the COCO objects search are
        #: dropped (None: max_objects)
        self.taught_candidates = taught_candidates

    def detect(self, image: Image.Image) -> list[Detection]:
        base, raw = self._base_detections(image)
        first, rest, count = [], [], {}
        for d in base:
            count[d.category] = count.get(d.category, 0) + 1
            limit = self.base_per_category
            (rest if limit and count[d.category] > limit else first).append(d)
        found = first[: self.max_objects]
        covered = {c for d in found for c in (d.search_categories or (d.category,))}
        # a category the taught detector adds may come more than once (its per_category):
        # its second object waits, like the second chair, until every category had its chance
        added: set[str] = set()
        again: list[Detection] = []
        # the taught detector's best taught_candidates: those of categories the COCO objects
        # already search are dropped below, so more than max_objects may be worth a look
        extras = self.taught.detect(image, raw, limit=self.taught_candidates)
        for extra in extras:
            if extra.category in added:
                again.append(extra)
            elif extra.category not in covered and len(found) < self.max_objects:
                covered.update(extra.search_categories)
                added.add(extra.category)
                found.append(extra)
        later = again + rest
        return found + later[: self.max_objects - len(found)]

    def _base_detections(self, image: Image.Image):
        """The COCO detections and, when the base is the YOLO detector over the same model
        as the proposals, the raw boxes of its one pass at the proposals' low confidence."""
        featurizer = getattr(self.taught, "featurizer", None)
        same_pass = (
            featurizer is not None
            and featurizer.yolo is not None
            and getattr(self.base, "model", None) is featurizer.yolo
            and getattr(self.base, "image_size", None) == featurizer.config.yolo_image_size
        )
        if not same_pass:
            return self.base.detect(image), None
        image = _rgb(image)
        found, result = self.base.detect_with_results(
            image, raw_confidence=featurizer.config.yolo_confidence
        )
        boxes = result.boxes
        if boxes is None:
            return found, None
        raw = tuple(t.cpu().numpy() for t in (boxes.xyxy, boxes.conf, boxes.cls))
        return found, raw

    def name_region(self, image: Image.Image, box: Box) -> Detection | None:
        return self.taught.name_region(image, box)
