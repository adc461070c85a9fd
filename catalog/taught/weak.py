"""Weak labels from real scenes: learn what the catalog's products look like in a photograph.

Cut-outs pasted into rooms do not look like photographed furniture, and the real lamps and
rugs of the background rooms are labelled background. A shop often knows which of its
products a scene photo shows without knowing where (IKEA's ``room_products.csv``: a room
photo and the products in it). Such a scene shows each listed product somewhere: after a
first fit on the synthetic scenes, the region of the real scene that best combines the
classifier's probability of the product's category with the region's likeness to the
product's own photo (``log p + similarity_weight * cosine``) is taken as a positive of the
category, with the regions overlapping it by IoU >= ``near_iou``; the classifier is then
fitted again with these real positives (``copies`` each) added to the synthetic regions.

Only training-split scenes may be given (the caller's job), so that held-out scenes stay fit
for evaluation. ``benchmarks/draw_weak_labels.py`` draws the regions chosen.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from catalog.taught.regions import iou_matrix
from shopthelook.core.errors import ImageError
from shopthelook.core.images import load_image

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class WeakLabelRules:
    #: copies of each real positive among the synthetic regions (they are few, and real)
    copies: int = 3
    #: regions overlapping the chosen one at least this much are positives too
    near_iou: float = 0.6
    #: a positive covers this share of the scene at least / at most
    min_area: float = 0.01
    max_area: float = 0.6
    #: weight of the region's cosine likeness to the product photo against log p(category)
    similarity_weight: float = 15.0
    #: product photos are reduced to this long side before their features are taken (the
    #: feature pass then scales them to the region image size): a blur the placement was
    #: chosen with
    photo_size: int = 256


@dataclass(frozen=True)
class LabelledScene:
    """A real scene photo and the (product id, category) of each learnable product it shows."""

    image: Image.Image
    products: tuple[tuple[str, str], ...]

    @property
    def categories(self) -> frozenset[str]:
        return frozenset(category for _, category in self.products)


def listed_products(
    product_ids: Collection[str], category_of: Mapping[str, str], learned: Collection[str]
) -> tuple[tuple[str, str], ...]:
    """(id, category) of a scene's listed products whose category is learned, once each;
    products not in the catalog are ignored."""
    ids = dict.fromkeys(map(str, product_ids))
    return tuple((p, category_of[p]) for p in ids if category_of.get(p) in learned)


def product_vectors(
    featurizer, images: Mapping[str, str | Path], rules: WeakLabelRules
) -> dict[str, np.ndarray]:
    """Unit visual feature of each product photo (an unreadable photo is left out: its
    product is then placed by its category's probability alone)."""
    out = {}
    for product_id, path in images.items():
        try:
            photo = load_image(path)
        except (ImageError, OSError) as exc:
            log.warning("product %s: photo not read for the weak labels: %s", product_id, exc)
            continue
        photo.thumbnail((rules.photo_size, rules.photo_size))
        whole = np.array([[0, 0, photo.width, photo.height]], np.float32)
        out[product_id] = _unit(featurizer.features(photo, whole)[:, featurizer.layout.visual])[0]
    return out


@dataclass
class WeakLabels:
    """Features and labels (i + 1: category i) of the real positives, ``copies`` each, and
    per scene the (category, region in pixels) chosen for each listed product, to look at."""

    x: np.ndarray
    y: np.ndarray
    chosen: list[list[tuple[str, Box]]]

    @property
    def positives(self) -> int:
        return len(self.y)


def weak_regions(
    featurizer,
    classifier,
    scenes: Sequence[LabelledScene],
    rules: WeakLabelRules,
    *,
    vectors: Mapping[str, np.ndarray] | None = None,
    show_progress: bool = False,
) -> WeakLabels:
    """The real positives of ``scenes`` under ``classifier`` (fitted on synthetic scenes);
    ``vectors``: ``product_vectors`` of the listed products."""
    categories = list(classifier.categories)
    vectors = vectors or {}
    xs = [np.zeros((0, featurizer.layout.width), np.float32)]
    ys = [np.zeros(0, int)]
    chosen: list[list[tuple[str, Box]]] = []
    for scene in tqdm(scenes, desc="real scenes", disable=not show_progress):
        picked: list[tuple[str, Box]] = []
        chosen.append(picked)
        wanted = [(p, c) for p, c in scene.products if c in categories]
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
        regions = _unit(x[:, featurizer.layout.visual])
        for product_id, category in wanted:
            column = categories.index(category) + 1
            score = np.log(p[:, column] + 1e-3)
            if product_id in vectors:
                score = score + rules.similarity_weight * (regions @ vectors[product_id])
            best = int(np.where(allowed, score, -np.inf).argmax())
            picked.append((category, tuple(float(v) for v in boxes[best])))
            near = iou_matrix(boxes, boxes[best : best + 1])[:, 0] >= rules.near_iou
            rows = np.nonzero(near & allowed)[0]
            xs.append(np.repeat(x[rows], rules.copies, axis=0))
            ys.append(np.full(len(rows) * rules.copies, column))
    return WeakLabels(np.concatenate(xs), np.concatenate(ys), chosen)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-9)
