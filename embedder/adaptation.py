"""Crop -> product adaptation: training pairs mined from room photos, and scene-like product shots.

A crop of a chair in a room and the catalog photo of that chair look different (clutter,
scale, occlusion, light, a white studio background). To make them meet in one space the
SAME head is trained with each product as a group whose members are its catalog photo, the
crops of it found in training rooms, and augmented copies of the photo made to look like a
crop from a scene (:func:`scene_like`).

Crops are mined where the ground truth is unambiguous: in a room with exactly one product of
a category (room_products) and exactly one detected object that searches that category, that
object is that product. Rooms used here must never be rooms the evaluation uses.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance, ImageFilter

from shopthelook.core.errors import DatasetError, ShopTheLookError
from shopthelook.core.images import crop as crop_image
from shopthelook.core.images import load_image

logger = logging.getLogger(__name__)


@dataclass
class CropPair:
    scene_id: str
    product_id: str
    category: str
    crop: Image.Image
    score: float


def mine_crop_pairs(
    scenes: pd.DataFrame,
    pairs: pd.DataFrame,
    product_category: dict[str, str],
    detector,
    *,
    margin: float = 0.05,
    show_progress: bool = False,
) -> list[CropPair]:
    """(crop, product) pairs from rooms where a category has one product and one detection.

    ``scenes``: scene_id, image; ``pairs``: scene_id, product_id (the room's products);
    ``detector.detect(image) -> list[Detection]`` with ``category`` / ``search_categories``.
    """
    from tqdm import tqdm

    for name, table, cols in (("scenes", scenes, ["scene_id", "image"]),
                              ("pairs", pairs, ["scene_id", "product_id"])):  # fmt: skip
        missing = [c for c in cols if c not in table.columns]
        if missing:
            raise DatasetError(f"{name} table: missing column(s) {missing}")
    image_of = dict(zip(scenes["scene_id"].astype(str), scenes["image"], strict=True))
    out: list[CropPair] = []
    grouped = pairs.groupby("scene_id")["product_id"].apply(list)
    for scene_id, products in tqdm(grouped.items(), total=len(grouped), desc="mining crops",
                                   disable=not show_progress):  # fmt: skip
        if scene_id not in image_of:
            continue
        by_category: dict[str, list[str]] = {}
        for pid in products:
            cat = product_category.get(str(pid))
            if cat:
                by_category.setdefault(cat, []).append(str(pid))
        single = {c: p[0] for c, p in by_category.items() if len(set(p)) == 1}
        if not single:
            continue
        try:
            picture = load_image(image_of[scene_id])
            detections = [d for d in detector.detect(picture) if d.source == "detector"]
        except ShopTheLookError as exc:
            logger.warning("room %s skipped: %s", scene_id, exc)
            continue
        for cat, pid in single.items():
            matching = [d for d in detections if d.category == cat or cat in d.search_categories]
            if len(matching) == 1:
                d = matching[0]
                out.append(
                    CropPair(str(scene_id), pid, cat, crop_image(picture, d.box, margin), d.score)
                )
    return out


def background_patches(
    scenes: Sequence[str], rng: np.random.Generator, n: int = 64, size: int = 320
) -> list[Image.Image]:
    """Random square patches of room photos (training rooms only) to paste products onto."""
    patches = []
    paths = list(scenes)
    if not paths:
        raise DatasetError("scene-like augmentation needs at least one room photo for backgrounds")
    for i in range(n):
        img = load_image(paths[int(rng.integers(len(paths)))] if i >= len(paths) else paths[i])
        side = int(min(img.size) * rng.uniform(0.35, 0.8))
        x = int(rng.integers(0, img.width - side + 1))
        y = int(rng.integers(0, img.height - side + 1))
        patches.append(img.crop((x, y, x + side, y + side)).resize((size, size)))
    return patches


def _foreground_mask(img: Image.Image, threshold: int = 235) -> Image.Image:
    """Not-near-white pixels: catalog shots are on white, the product is everything else."""
    a = np.asarray(img, dtype=np.uint8)
    fg = (a.min(axis=2) < threshold).astype(np.uint8) * 255
    return (
        Image.fromarray(fg, "L")
        .filter(ImageFilter.MaxFilter(3))
        .filter(ImageFilter.GaussianBlur(1))
    )


def scene_like(
    product: Image.Image, backgrounds: Sequence[Image.Image], rng: np.random.Generator
) -> Image.Image:
    """A product shot made to look like a detector crop from a room photo.

    Background: the white studio backdrop is replaced by a room patch. Scale: the product
    fills 55-95 % of the crop, off-centre, as a detector box with margin would. Occlusion: a
    piece of another room covers part of it. Light: brightness, contrast, colour cast, blur.
    """
    product = product.convert("RGB")
    mask = _foreground_mask(product)
    bg = backgrounds[int(rng.integers(len(backgrounds)))]
    scale = rng.uniform(0.55, 0.95)
    canvas_w = max(16, int(product.width / scale))
    canvas_h = max(16, int(product.height / scale))
    canvas = bg.resize((canvas_w, canvas_h))
    x = int(rng.integers(0, canvas_w - product.width + 1))
    y = int(rng.integers(0, canvas_h - product.height + 1))
    canvas.paste(product, (x, y), mask)
    if rng.random() < 0.5:  # occlusion by a piece of another scene
        occ = backgrounds[int(rng.integers(len(backgrounds)))]
        ow, oh = int(canvas_w * rng.uniform(0.15, 0.4)), int(canvas_h * rng.uniform(0.15, 0.4))
        ox = int(rng.integers(0, canvas_w - ow + 1))
        oy = int(rng.integers(canvas_h // 3, canvas_h - oh + 1))  # things stand in front, low
        canvas.paste(occ.resize((ow, oh)), (ox, oy))
    canvas = ImageEnhance.Brightness(canvas).enhance(rng.uniform(0.6, 1.15))
    canvas = ImageEnhance.Contrast(canvas).enhance(rng.uniform(0.7, 1.1))
    canvas = ImageEnhance.Color(canvas).enhance(rng.uniform(0.7, 1.2))
    cast = np.array(rng.uniform(0.9, 1.1, 3), dtype=np.float32)  # warm / cool light
    arr = np.clip(np.asarray(canvas, dtype=np.float32) * cast, 0, 255).astype(np.uint8)
    canvas = Image.fromarray(arr)
    if rng.random() < 0.5:
        canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    # rooms are photographed at lower resolution than studio shots
    small = max(32, int(max(canvas.size) * rng.uniform(0.25, 0.6)))
    canvas.thumbnail((small, small))
    return canvas


def pair_groups(
    product_ids: Sequence[str],
    product_vectors: np.ndarray,
    members: Sequence[tuple[str, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """(x, labels): each product's catalog vector plus its crop / augmented vectors, grouped
    by product id; products without any extra member are left out (no positive pair)."""
    index = {str(p): i for i, p in enumerate(product_ids)}
    extra: dict[str, list[np.ndarray]] = {}
    for pid, vec in members:
        if str(pid) in index:
            extra.setdefault(str(pid), []).append(np.asarray(vec, dtype=np.float32))
    xs, labels = [], []
    for pid, vecs in sorted(extra.items()):
        xs.append(product_vectors[index[pid]])
        labels.append(pid)
        for v in vecs:
            xs.append(v)
            labels.append(pid)
    if len(set(labels)) < 2:
        raise DatasetError("adaptation needs at least two products with a crop or augmentation")
    return np.stack(xs).astype(np.float32), np.asarray(labels)


def crop_recall(
    crop_vectors: np.ndarray,
    crop_products: Sequence[str],
    crop_categories: Sequence[str],
    product_vectors: np.ndarray,
    product_ids: Sequence[str],
    product_categories: Sequence[str],
    k: int = 10,
) -> float:
    """Share of crops whose product is in the top-k of its category's products (same space)."""
    pids = np.asarray([str(p) for p in product_ids])
    pcats = np.asarray([str(c) for c in product_categories])
    hits = []
    for vec, pid, cat in zip(crop_vectors, crop_products, crop_categories, strict=True):
        in_cat = np.flatnonzero(pcats == cat)
        if not len(in_cat):
            continue
        scores = product_vectors[in_cat] @ vec
        top = in_cat[np.argsort(-scores, kind="stable")[:k]]
        hits.append(str(pid) in set(pids[top]))
    if not hits:
        raise DatasetError("crop_recall: no crop has a product category in the catalog")
    return float(np.mean(hits))


@dataclass
class SceneObjects:
    """A scene's searched objects: backbone vectors of their crops and what each searches."""

    scene_id: str
    #: [n, d] backbone vectors of the objects' crops (detector objects only, best first)
    vectors: np.ndarray
    #: per object: its search categories, or (category,), or () for "every category"
    categories: list[tuple[str, ...]]


@dataclass
class VectorLookRecall:
    ks: tuple[int, ...]
    pairs: int = 0
    covered: int = 0
    hits: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        n, c = max(1, self.pairs), max(1, self.covered)
        return {
            "pairs": self.pairs,
            "covered_pairs": self.covered,
            "all": {str(k): round(self.hits.get(k, 0) / n, 4) for k in self.ks},
            "covered": {str(k): round(self.hits.get(k, 0) / c, 4) for k in self.ks},
        }


def vector_look_recall(
    scenes: Sequence[SceneObjects],
    products_of: dict[str, Sequence[str]],
    product_ids: Sequence[str],
    product_categories: Sequence[str],
    product_vectors: np.ndarray,
    transform=None,
    ks: Sequence[int] = (1, 5, 10, 20),
) -> VectorLookRecall:
    """look-recall@K from cached object vectors, by the rules of ``evaluate_looks``.

    Each object searches its categories that the catalog has (all when none), merged by
    score; a pair is covered when an object searches its category and a hit at K when its
    product is in the top-K of one of those objects. ``product_vectors`` are in the search
    space already; ``transform`` (a head's) maps the object vectors into it. Products of
    ``products_of`` that are not among ``product_ids`` are skipped.
    """
    ks = tuple(sorted(ks))
    pids = np.asarray([str(p) for p in product_ids])
    pcats = np.asarray([str(c) for c in product_categories])
    category_of = dict(zip(pids.tolist(), pcats.tolist(), strict=True))
    rows_of = {c: np.flatnonzero(pcats == c) for c in np.unique(pcats)}
    everything = np.arange(len(pids))
    out = VectorLookRecall(ks)
    for scene in scenes:
        vectors = np.asarray(scene.vectors, dtype=np.float32).reshape(-1, product_vectors.shape[1])
        if transform is not None and len(vectors):
            vectors = transform(vectors)
        lists = []
        for vec, cats in zip(vectors, scene.categories, strict=True):
            known = [c for c in cats if c in rows_of]
            rows = np.concatenate([rows_of[c] for c in known]) if known else everything
            scores = product_vectors[rows] @ vec
            top = rows[np.argsort(-scores, kind="stable")[: ks[-1]]]
            lists.append((pids[top].tolist(), set(cats) if cats else set(rows_of)))
        for pid in products_of.get(scene.scene_id, ()):
            cat = category_of.get(str(pid))
            if cat is None:
                continue
            reach = [ranked for ranked, cats in lists if cat in cats]
            out.pairs += 1
            out.covered += bool(reach)
            for k in ks:
                out.hits[k] = out.hits.get(k, 0) + any(str(pid) in r[:k] for r in reach)
    return out
