"""Scene-like (crop, product) pairs for the crop -> product adaptation head.

The catalog-taught detector's synthetic scenes (``catalog.taught.scenes``: product cut-outs
pasted into real room photos) also give training pairs for the embedding: the crop of each
pasted product's visible box, cut with the geometry the pipeline uses for a detection
(``shopthelook.core.images.crop`` with ``crop_margin``), is a picture of that product as a
detector would see it in a room. Every product with a plain-background photo can be pasted,
so the pairs cover every category (lamps, rugs, storage, ...), where pairs mined from real
rooms (``embedder.adaptation.mine_crop_pairs``) number a few dozen.

Backgrounds must be *training* scenes only (``catalog.taught.split``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from PIL import Image

from catalog.taught.cutout import CutoutRules, cut_out
from catalog.taught.scenes import CatalogCutout, SceneRules, resize_long_side, synthesize
from shopthelook.core.errors import DatasetError, ImageError
from shopthelook.core.images import crop as crop_image
from shopthelook.core.images import load_image
from shopthelook.core.types import Box

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyntheticPairRules:
    """How many synthetic scenes, and how they are made (IKEA rooms are 960 px wide)."""

    scenes: int = 1000
    #: long side of a stored cut-out: larger than the detector's 256 so big pastes stay sharp
    cutout_size: int = 384
    #: the pipeline's crop margin (settings.crop_margin)
    margin: float = 0.0
    seed: int = 0
    scene: SceneRules = field(default_factory=lambda: SceneRules(scene_size=960))


@dataclass
class SyntheticPair:
    scene_index: int
    box: Box
    product_id: str
    category: str
    crop: Image.Image


def product_cutouts(
    products: pd.DataFrame,
    *,
    categories: Sequence[str] | None = None,
    size: int = 384,
) -> tuple[list[CatalogCutout], dict[str, int]]:
    """A cut-out of every product (of ``categories``; default all but "other") whose photo
    has a plain background, and per category the number of photos that had none."""
    missing = [c for c in ("product_id", "image", "category") if c not in products.columns]
    if missing:
        raise DatasetError(f"products table: missing column(s) {missing}")
    wanted = set(categories) if categories is not None else None
    rules = CutoutRules(size=size)
    out: list[CatalogCutout] = []
    skipped: dict[str, int] = {}
    for pid, path, category in zip(products["product_id"], products["image"], products["category"]):
        category = str(category)
        skip = category not in wanted if wanted is not None else category == "other"
        if skip:
            continue
        try:
            cut = cut_out(load_image(path), rules)
        except (ImageError, OSError) as exc:
            logger.warning("product %s: photo unreadable (%s)", pid, exc)
            cut = None
        if cut is None:
            skipped[category] = skipped.get(category, 0) + 1
            continue
        out.append(CatalogCutout(str(pid), category, cut))
    if not out:
        raise DatasetError(
            "no product photo could be cut out of a plain background: synthetic pairs need "
            "product photos on a plain (e.g. white) background"
        )
    return out, skipped


def product_order(
    cutouts: Sequence[CatalogCutout], count: int, rng: np.random.Generator
) -> list[CatalogCutout]:
    """``count`` cut-outs, every product about equally often (whole shuffled rounds)."""
    if not cutouts:
        raise DatasetError("product_order: no cut-outs to paste")
    out: list[CatalogCutout] = []
    while len(out) < count:
        out += [cutouts[int(i)] for i in rng.permutation(len(cutouts))]
    return out[:count]


def synthetic_pairs(
    backgrounds: Sequence[Image.Image],
    cutouts: Sequence[CatalogCutout],
    rules: SyntheticPairRules | None = None,
) -> Iterator[list[SyntheticPair]]:
    """Per synthetic scene, the (crop, product) pairs of the products pasted into it.

    ``backgrounds``: photos of *training* scenes. Each scene takes the next
    ``scene.max_products`` cut-outs of :func:`product_order` (``synthesize`` pastes 2 to
    that many of them); a paste left mostly hidden by later ones gives no pair.
    """
    rules = rules or SyntheticPairRules()
    if not backgrounds:
        raise DatasetError("synthetic pairs need at least one training scene photo as background")
    rng = np.random.default_rng(rules.seed)
    rooms = [resize_long_side(b.convert("RGB"), rules.scene.scene_size) for b in backgrounds]
    per_scene = rules.scene.max_products
    order = product_order(cutouts, rules.scenes * per_scene, rng)
    for i in range(rules.scenes):
        room = rooms[int(rng.integers(len(rooms)))]
        # synthesize draws 2..max_products of the cut-outs it is given (with replacement)
        scene = synthesize(room, order[i * per_scene : (i + 1) * per_scene], rng, rules.scene)
        yield [
            SyntheticPair(
                i, o.box, o.product_id, o.category, crop_image(scene.image, o.box, rules.margin)
            )
            for o in scene.objects
        ]
