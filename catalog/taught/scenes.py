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
    #: categories photographed from above that lie on the floor in a room (rugs): pasted
    #: squashed to this share of their height and tapered away from the camera
    flat_categories: tuple[str, ...] = ("rug",)
    flat_squash: tuple[float, float] = (0.22, 0.45)
    flat_taper: tuple[float, float] = (0.6, 0.9)
    flat_area: tuple[float, float] = (0.04, 0.3)


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


def perspective_coefficients(source: Sequence[tuple[float, float]], target) -> tuple:
    """PIL PERSPECTIVE coefficients mapping output points ``target`` to input ``source``."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return tuple(np.linalg.solve(np.array(rows, float), np.array(rhs, float)).tolist())


def lay_flat(cut: Cutout, rng: np.random.Generator, rules: SceneRules) -> Cutout:
    """A top-down product photo (a rug) as seen lying on a floor: squashed and tapered."""
    w, h = cut.image.size
    out_h = max(2, round(h * rng.uniform(*rules.flat_squash)))
    inset = w * (1.0 - rng.uniform(*rules.flat_taper)) / 2
    target = [(inset, 0.0), (w - inset, 0.0), (float(w), float(out_h)), (0.0, float(out_h))]
    source = [(0.0, 0.0), (float(w), 0.0), (float(w), float(h)), (0.0, float(h))]
    coeffs = perspective_coefficients(source, target)
    image = cut.image.transform((w, out_h), Image.PERSPECTIVE, coeffs, Image.BILINEAR)
    mask = cut.mask.transform((w, out_h), Image.PERSPECTIVE, coeffs, Image.BILINEAR, fillcolor=0)
    return Cutout(image, mask)


def place_flat(
    cut: Cutout, scene_size: tuple[int, int], rng: np.random.Generator, rules: SceneRules
) -> Box:
    """A box on the floor (the lower part of the scene) for a product lying flat."""
    width, height = scene_size
    low, high = rules.flat_area
    area = np.exp(rng.uniform(np.log(low), np.log(high))) * width * height
    aspect = cut.image.width / max(1, cut.image.height)
    w = min(width * 0.98, np.sqrt(area * aspect))
    h = w / aspect
    x1 = rng.uniform(0, width - w)
    bottom = rng.uniform(max(h, 0.7 * height), height)
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
    # what lies on the floor first: the furniture pasted after it stands on it
    chosen.sort(key=lambda c: c.category not in rules.flat_categories)
    masks: list[np.ndarray] = []
    placed: list[CatalogCutout] = []
    pasted: list[int] = []
    for item in chosen:
        cut = jitter_cutout(item.cutout, rng, rules.jitter)
        if item.category in rules.flat_categories:
            cut = lay_flat(cut, rng, rules)
            box = place_flat(cut, scene.size, rng, rules)
        else:
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
