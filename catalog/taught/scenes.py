"""Synthetic scenes: catalog cut-outs pasted into real scene photos, with their boxes.

Each scene is one background photo (a *training* room only: see ``catalog.taught.split``)
resized to ``scene_size`` on its long side, with 2..``max_products`` products pasted at a
plausible size and place (most stand on the lower part of the image), jittered in light,
colour, blur and perspective, later pastes occluding earlier ones. A pasted product that is
left less than ``min_visible`` visible is dropped; the box is that of its visible pixels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from catalog.taught.cutout import Cutout, PasteJitter, jitter_cutout, mask_box, paste
from shopthelook.core.types import Box

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SceneRules:
    scene_size: int = 512
    min_products: int = 2
    max_products: int = 6
    #: the pasted product's box covers this share of the scene (log-uniform between)
    min_area: float = 0.015
    max_area: float = 0.22
    #: share of pastes whose bottom edge lies in the lower part of the scene (on the floor)
    grounded: float = 0.7
    min_visible: float = 0.35
    jitter: PasteJitter = field(default_factory=PasteJitter)


@dataclass
class PastedObject:
    box: Box
    category: str
    product_id: str


@dataclass
class SyntheticScene:
    image: Image.Image
    objects: list[PastedObject]


@dataclass(frozen=True)
class CatalogCutout:
    product_id: str
    category: str
    cutout: Cutout


def resize_long_side(image: Image.Image, size: int) -> Image.Image:
    scale = size / max(image.size)
    w, h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    return image.resize((w, h), Image.BILINEAR)


def place(
    cut: Cutout, scene_size: tuple[int, int], rng: np.random.Generator, rules: SceneRules
) -> Box:
    """A box for ``cut`` inside the scene, keeping the cut-out's aspect ratio."""
    width, height = scene_size
    area = np.exp(rng.uniform(np.log(rules.min_area), np.log(rules.max_area))) * width * height
    aspect = cut.image.width / max(1, cut.image.height)
    w = min(width * 0.95, np.sqrt(area * aspect))
    h = min(height * 0.95, w / aspect)
    w = h * aspect if w / aspect > h else w
    x1 = rng.uniform(0, width - w)
    if rng.random() < rules.grounded:
        bottom = rng.uniform(max(h, 0.55 * height), height)
    else:
        bottom = rng.uniform(h, height)
    return Box(float(x1), float(bottom - h), float(x1 + w), float(bottom))


def synthesize(
    background: Image.Image,
    cutouts: Sequence[CatalogCutout],
    rng: np.random.Generator,
    rules: SceneRules | None = None,
) -> SyntheticScene:
    """One synthetic scene: ``background`` with a few of ``cutouts`` pasted in."""
    rules = rules or SceneRules()
    scene = resize_long_side(background.convert("RGB"), rules.scene_size)
    n = int(rng.integers(rules.min_products, rules.max_products + 1))
    chosen = [cutouts[int(i)] for i in rng.choice(len(cutouts), size=min(n, len(cutouts)))]
    masks: list[np.ndarray] = []
    placed: list[CatalogCutout] = []
    pasted: list[int] = []
    for item in chosen:
        cut = jitter_cutout(item.cutout, rng, rules.jitter)
        box = place(cut, scene.size, rng, rules)
        scene, mask = paste(scene, cut, box)
        for earlier in masks:
            earlier &= ~mask
        masks.append(mask)
        pasted.append(int(mask.sum()))
        placed.append(item)
    objects = []
    for item, mask, before in zip(placed, masks, pasted):
        box = mask_box(mask)
        left = int(mask.sum())
        if box is None or left < 64 or left < rules.min_visible * before:
            continue
        objects.append(PastedObject(box, item.category, item.product_id))
    return SyntheticScene(scene, objects)


def balanced_order(
    cutouts: Sequence[CatalogCutout], count: int, rng: np.random.Generator
) -> list[CatalogCutout]:
    """``count`` cut-outs drawn so that every category appears about equally often."""
    by_category: dict[str, list[CatalogCutout]] = {}
    for c in cutouts:
        by_category.setdefault(c.category, []).append(c)
    categories = sorted(by_category)
    out = []
    for i in range(count):
        pool = by_category[categories[i % len(categories)]]
        out.append(pool[int(rng.integers(len(pool)))])
    rng.shuffle(out)
    return out
