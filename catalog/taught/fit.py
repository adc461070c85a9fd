"""Fit a catalog-taught detector: cut-outs -> synthetic scenes -> region features -> classifier.

Labels of a proposal in a synthetic scene: the category of the pasted product it overlaps
by IoU >= ``positive_iou``; background when it overlaps every pasted product by less than
``background_iou``; unused in between. Each pasted box is also added, with jittered copies,
as a proposal, so that every category has positives.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from catalog.taught.cutout import CutoutRules, cut_out
from catalog.taught.files import FittedDetector, learnable_categories
from catalog.taught.model import fit_classifier
from catalog.taught.regions import RegionConfig, RegionFeaturizer, iou_matrix
from catalog.taught.scenes import CatalogCutout, SceneRules, balanced_order, synthesize
from catalog.taught.weak import (
    LabelledScene,
    WeakLabelRules,
    listed_products,
    product_vectors,
    weak_regions,
)
from shopthelook.core.errors import CatalogError, ImageError
from shopthelook.core.fingerprint import file_fingerprint
from shopthelook.core.images import load_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitSettings:
    scenes: int = 400
    #: hybrid: best on the held-out IKEA rooms (benchmarks/eval_taught_ikea.py)
    design: str = "hybrid"
    seed: int = 0
    #: product photos cut out per category (the rest are not needed to learn the look)
    cutouts_per_category: int = 40
    positive_iou: float = 0.5
    background_iou: float = 0.3
    #: background regions kept per positive one
    background_ratio: float = 3.0
    jittered_copies: int = 2
    regularisation: float = 0.05
    region: RegionConfig = field(default_factory=RegionConfig)
    scene_rules: SceneRules = field(default_factory=SceneRules)
    weak_labels: WeakLabelRules = field(default_factory=WeakLabelRules)

    def as_dict(self) -> dict[str, Any]:
        nested = ("region", "scene_rules", "weak_labels")
        out = {k: v for k, v in self.__dict__.items() if k not in nested}
        out["weak_labels"] = dict(self.weak_labels.__dict__)
        out["scene_rules"] = {
            k: v for k, v in self.scene_rules.__dict__.items() if k != "jitter"
        } | {"jitter": dict(self.scene_rules.jitter.__dict__)}
        return out


@dataclass
class FitData:
    x: np.ndarray
    y: np.ndarray
    #: (scene index, box, product id) of every pasted product: scene-like pairs
    pairs: list[tuple[int, tuple[float, float, float, float], str]]


def load_cutouts(
    products, categories: Sequence[str], fit: FitSettings, rng: np.random.Generator
) -> tuple[list[CatalogCutout], list[str]]:
    """Cut-outs per category and the messages about what could not be used."""
    rules = CutoutRules()
    out: list[CatalogCutout] = []
    notes: list[str] = []
    for category in categories:
        rows = products[products["category"] == category]
        order = rng.permutation(len(rows))
        unreadable = not_plain = 0
        found = 0
        for i in order:
            if found >= fit.cutouts_per_category:
                break
            row = rows.iloc[int(i)]
            try:
                photo = load_image(row["image"])
            except (ImageError, OSError):
                unreadable += 1
                continue
            cut = cut_out(photo, rules)
            if cut is None:
                not_plain += 1
                continue
            out.append(CatalogCutout(str(row["product_id"]), category, cut))
            found += 1
        if found == 0:
            notes.append(
                f"category {category!r}: none of its {len(rows)} photo(s) could be cut out "
                f"({unreadable} unreadable, {not_plain} without a plain background): the "
                "detector does not learn it (its products are still searched)"
            )
        elif found < 3:
            notes.append(
                f"category {category!r}: only {found} product photo(s) to learn from; "
                "add products on a plain background for a better detector"
            )
    return out, notes


def scene_regions(
    featurizer: RegionFeaturizer,
    scene,
    categories: Sequence[str],
    fit: FitSettings,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of one synthetic scene's proposals (plus its jittered truths)."""
    boxes, conf, columns = featurizer.propose(scene.image)
    truth = np.array([[o.box.x1, o.box.y1, o.box.x2, o.box.y2] for o in scene.objects], np.float32)
    truth = truth.reshape(-1, 4)
    extra = [truth]
    for _ in range(fit.jittered_copies):
        w = (truth[:, 2] - truth[:, 0])[:, None]
        h = (truth[:, 3] - truth[:, 1])[:, None]
        shift = rng.uniform(-0.12, 0.12, truth.shape) * np.concatenate([w, h, w, h], axis=1)
        extra.append(truth + shift)
    added = np.concatenate(extra) if len(truth) else np.zeros((0, 4), np.float32)
    width, height = scene.image.size
    added[:, [0, 2]] = added[:, [0, 2]].clip(0, width)
    added[:, [1, 3]] = added[:, [1, 3]].clip(0, height)
    boxes = np.concatenate([boxes, added])
    conf = np.concatenate([conf, np.zeros(len(added))])
    columns = np.concatenate([columns, np.full(len(added), -2)])
    index = {c: i + 1 for i, c in enumerate(categories)}
    labels = np.full(len(boxes), -1)
    iou = iou_matrix(boxes, truth)
    best = iou.max(axis=1) if len(truth) else np.zeros(len(boxes))
    labels[best < fit.background_iou] = 0
    if len(truth):
        which = iou.argmax(axis=1)
        positive = best >= fit.positive_iou
        labels[positive] = [index[scene.objects[j].category] for j in which[positive]]
    pos = np.nonzero(labels > 0)[0]
    neg = np.nonzero(labels == 0)[0]
    keep_neg = max(4, int(fit.background_ratio * max(1, len(pos))))
    neg = rng.permutation(neg)[:keep_neg]
    keep = np.sort(np.concatenate([pos, neg]))
    x = featurizer.features(scene.image, boxes[keep], conf[keep], columns[keep])
    return x, labels[keep]


def fit_detector(
    catalog,
    backgrounds: Sequence[str | Path],
    *,
    settings,
    taxonomy,
    fit: FitSettings | None = None,
    show_progress: bool = False,
    scene_products: Mapping[str, Collection[str]] | None = None,
) -> tuple[FittedDetector, FitData, list[str]]:
    """Fit a detector for ``catalog``'s categories on scenes made from ``backgrounds``.

    ``scene_products``: background path -> ids of the catalog products that photo shows
    (weak labels, ``catalog.taught.weak``); the classifier is then refitted with the real
    scenes' regions of those products' categories."""
    fit = fit or FitSettings(scenes=settings.taught_scenes)
    started = time.perf_counter()
    rng = np.random.default_rng(fit.seed)
    categories = learnable_categories(catalog)
    if not categories:
        raise CatalogError(
            "the catalog has no categories to learn (every product is 'other'): give the "
            "products a category column; objects will search the whole catalog meanwhile"
        )
    cutouts, notes = load_cutouts(catalog.products, categories, fit, rng)
    learned = sorted({c.category for c in cutouts})
    if not learned:
        raise CatalogError(
            "no product photo could be cut out of a plain background: the detector needs "
            "product photos on a plain (e.g. white) background; " + "; ".join(notes[:3])
        )
    loaded = _load_backgrounds(backgrounds, fit.scene_rules.scene_size)
    rooms = [image for _, image in loaded]
    featurizer = RegionFeaturizer(
        learned,
        taxonomy,
        weights=settings.detector_weights,
        config=fit.region,
        threads=settings.threads,
        runtime=settings.embed_runtime,
    )
    xs, ys, pairs = [], [], []
    per_scene = fit.scene_rules.max_products
    order = balanced_order(cutouts, fit.scenes * per_scene, rng)
    for i in tqdm(range(fit.scenes), desc="synthetic scenes", disable=not show_progress):
        scene = synthesize(
            rooms[i % len(rooms)], order[i * per_scene : (i + 1) * per_scene], rng, fit.scene_rules
        )
        x, y = scene_regions(featurizer, scene, learned, fit, rng)
        xs.append(x)
        ys.append(y)
        pairs += [(i, tuple(o.box.as_list()), o.product_id) for o in scene.objects]
    x, y = np.concatenate(xs), np.concatenate(ys)
    classifier = fit_classifier(x, y, learned, design=fit.design, regularisation=fit.regularisation)
    labelled = _labelled_scenes(loaded, scene_products or {}, catalog, learned)
    weak = {"scenes": len(labelled), "positives": 0}
    if labelled:
        shown = {p for scene in labelled for p, _ in scene.products}
        photos = catalog.products[catalog.products["product_id"].astype(str).isin(shown)]
        images = dict(zip(photos["product_id"].astype(str), photos["image"]))
        found = weak_regions(
            featurizer,
            classifier,
            labelled,
            fit.weak_labels,
            vectors=product_vectors(featurizer, images, fit.weak_labels),
            show_progress=show_progress,
        )
        weak["positives"] = found.positives // max(1, fit.weak_labels.copies)
        if found.positives:
            x, y = np.concatenate([x, found.x]), np.concatenate([y, found.y])
            classifier = fit_classifier(
                x, y, learned, design=fit.design, regularisation=fit.regularisation
            )
    seconds = time.perf_counter() - started
    manifest = {
        "catalog_backbone": catalog.backbone,
        "catalog_categories": categories,
        "catalog_source_hash": catalog.manifest.get("source_hash"),
        "yolo_weights": file_fingerprint(settings.detector_weights),
        "effnet_weights": featurizer.effnet.weights_fingerprints(),
        "training": fit.as_dict(),
        "backgrounds": len(rooms),
        "regions": {"total": int(len(y)), "positive": int((y > 0).sum())},
        "weakly_labelled": weak,
        "cutouts": {c: sum(1 for k in cutouts if k.category == c) for c in learned},
        "notes": notes,
        "fit_seconds": round(seconds, 1),
    }
    log.info("fitted a %s detector: %d categories, %.0f s", fit.design, len(learned), seconds)
    return FittedDetector(classifier, fit.region, manifest), FitData(x, y, pairs), notes


def _labelled_scenes(
    loaded: Sequence[tuple[str, Image.Image]],
    scene_products: Mapping[str, Collection[str]],
    catalog,
    learned: Sequence[str],
) -> list[LabelledScene]:
    if not scene_products:
        return []
    products = catalog.products
    category_of = dict(zip(products["product_id"].astype(str), products["category"]))
    out = []
    for path, image in loaded:
        products = listed_products(scene_products.get(path, ()), category_of, learned)
        if products:
            out.append(LabelledScene(image, products))
    return out


def _load_backgrounds(paths: Sequence[str | Path], size: int) -> list[tuple[str, Image.Image]]:
    """(path as given, image resized to ``size``) of every readable background."""
    from catalog.taught.scenes import resize_long_side

    rooms = []
    for p in paths:
        try:
            rooms.append((str(p), resize_long_side(load_image(p), size)))
        except (ImageError, OSError) as exc:
            log.warning("background %s skipped: %s", p, exc)
    if not rooms:
        raise CatalogError(
            "no readable scene photo to paste products into: give --scenes (a folder or CSV "
            "of room photos without products of interest marked; any real scenes will do)"
        )
    return rooms
