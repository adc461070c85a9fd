"""Weak labels from real scenes: learn what the catalog's products look like in a photograph.

Cut-outs pasted into rooms do not look like photographed furniture, and the real lamps and
rugs of the background rooms are labelled background. A shop often knows which of its
products a scene photo shows without knowing where (IKEA's ``room_products.csv``: a room
photo and the products in it). Such a scene shows each listed product's category somewhere:
after a first fit on the synthetic scenes, the region of the real scene that the classifier
scores highest for that category (with the regions overlapping it by IoU >= ``near_iou``) is
taken as a positive of the category, and the classifier is fitted again with these real
positives (``copies`` each) added to the synthetic regions.

Only training-split scenes may be given (the caller's job), so that held-out scenes stay fit
for evaluation.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from tqdm import tqdm

from catalog.taught.regions import iou_matrix

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeakLabelRules:
    #: copies of each real positive among the synthetic regions (they are few, and real)
    copies: int = 3
    #: regions overlapping the chosen one at least this much are positives too
    near_iou: float = 0.6
    #: a positive covers this share of the scene at least / at most
    min_area: float = 0.01
    max_area: float = 0.6


@dataclass(frozen=True)
class LabelledScene:
    """A real scene photo and the (learnable) categories of the products it shows."""

    image: Image.Image
    categories: frozenset[str]


def scene_categories(
    product_ids: Collection[str], category_of: dict[str, str], learned: Collection[str]
) -> frozenset[str]:
    """The learned categories among a scene's listed products (unknown products ignored)."""
    return frozenset(category_of[p] for p in map(str, product_ids) if category_of.get(p) in learned)


@dataclass
class WeakLabels:
    """Features and labels (i + 1: category i) of the real positives, ``copies`` each, and
    per scene the region chosen for each of its categories (pixels), to look at."""

    x: np.ndarray
    y: np.ndarray
    chosen: list[dict[str, tuple[float, float, float, float]]]

    @property
    def positives(self) -> int:
        return len(self.y)


def weak_regions(
    featurizer,
    classifier,
    scenes: Sequence[LabelledScene],
    rules: WeakLabelRules,
    *,
    show_progress: bool = False,
) -> WeakLabels:
    """The real positives of ``scenes`` under ``classifier`` (fitted on synthetic scenes)."""
    categories = list(classifier.categories)
    xs = [np.zeros((0, featurizer.layout.width), np.float32)]
    ys = [np.zeros(0, int)]
    chosen: list[dict[str, tuple[float, float, float, float]]] = []
    for scene in tqdm(scenes, desc="real scenes", disable=not show_progress):
        picked: dict[str, tuple[float, float, float, float]] = {}
        chosen.append(picked)
        wanted = [c for c in categories if c in scene.categories]
        if not wanted:
            continue
        boxes, conf, columns = featurizer.propose(scene.image)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        area = area / float(scene.image.width * scene.image.height)
        allowed = (area >= rules.min_area) & (area <= rules.max_area)
        if not allowed.any():
            continue
        x = featurizer.features(scene.image, boxes, conf, columns)
        p = classifier.predict_proba(x)
        for category in wanted:
            column = categories.index(category) + 1
            best = int(np.where(allowed, p[:, column], -1.0).argmax())
            picked[category] = tuple(float(v) for v in boxes[best])
            near = iou_matrix(boxes, boxes[best : best + 1])[:, 0] >= rules.near_iou
            rows = np.nonzero(near & allowed)[0]
            xs.append(np.repeat(x[rows], rules.copies, axis=0))
            ys.append(np.full(len(rows) * rules.copies, column))
    return WeakLabels(np.concatenate(xs), np.concatenate(ys), chosen)
