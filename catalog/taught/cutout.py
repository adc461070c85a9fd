"""Cut a product out of its photo and paste it into a scene.

A product photo on a plain background (IKEA: white) gives a mask: the pixels close to the
border colour that are connected to the border are background, the rest is the product.
An alpha channel, where present, is the mask. A photo whose border is not one plain colour
(a room shot, a model wearing the garment) has no cut-out and is skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from shopthelook.core.types import Box

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CutoutRules:
    #: a border pixel this close (max channel difference) to the border colour is background
    tolerance: int = 24
    #: share of border pixels that must be near the border colour for a "plain" background
    plain_border: float = 0.85
    #: the product must cover between these shares of its photo
    min_area: float = 0.03
    max_area: float = 0.97
    #: long side of the stored cut-out, in pixels
    size: int = 256


@dataclass
class Cutout:
    """A product's pixels (RGB) and mask (uint8 0..255), cropped to the product."""

    image: Image.Image
    mask: Image.Image

    @property
    def area(self) -> float:
        """Share of the cut-out's rectangle that the product covers."""
        m = np.asarray(self.mask, dtype=np.float32) / 255.0
        return float(m.mean())


def cut_out(photo: Image.Image, rules: CutoutRules | None = None) -> Cutout | None:
    """The product in ``photo``, or None when its background is not plain."""
    rules = rules or CutoutRules()
    photo.thumbnail((rules.size, rules.size))
    if photo.mode in ("RGBA", "LA") or (photo.mode == "P" and "transparency" in photo.info):
        rgba = np.asarray(photo.convert("RGBA"))
        mask = (rgba[..., 3] > 127).astype(np.uint8)
        rgb = rgba[..., :3]
        if mask.mean() > rules.max_area:  # opaque everywhere: judge the border colour instead
            mask = _border_mask(rgb, rules)
    else:
        rgb = np.asarray(photo.convert("RGB"))
        mask = _border_mask(rgb, rules)
    if mask is None:
        return None
    share = float(mask.mean())
    if not rules.min_area <= share <= rules.max_area:
        return None
    ys, xs = np.nonzero(mask)
    y1, y2, x1, x2 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    mask = mask[y1:y2, x1:x2] * 255
    return Cutout(Image.fromarray(np.ascontiguousarray(rgb[y1:y2, x1:x2])), Image.fromarray(mask))


def _border_mask(rgb: np.ndarray, rules: CutoutRules) -> np.ndarray | None:
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).astype(np.int16)
    colour = np.median(border, axis=0)
    near_border = np.abs(border - colour).max(axis=1) <= rules.tolerance
    if near_border.mean() < rules.plain_border:
        return None
    near = (np.abs(rgb.astype(np.int16) - colour).max(axis=2) <= rules.tolerance).astype(np.uint8)
    count, labels = cv2.connectedComponents(near, connectivity=4)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    background = np.isin(labels, edge[edge > 0]) & (near > 0)
    mask = (~background).astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    return cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)


@dataclass(frozen=True)
class PasteJitter:
    """How much each pasted product varies (all drawn per paste from the scene's generator)."""

    brightness: float = 0.25
    contrast: float = 0.2
    colour: float = 0.25
    #: most Gaussian blur radius, pixels
    blur: float = 1.2
    #: most horizontal shear of the perspective warp (share of the width)
    shear: float = 0.12
    #: feathering of the mask edge, pixels
    feather: float = 1.0


def jitter_cutout(cut: Cutout, rng: np.random.Generator, jitter: PasteJitter) -> Cutout:
    """Light, colour, blur, mirror and a little perspective, the same warp on image and mask."""
    image, mask = cut.image, cut.mask
    if rng.random() < 0.5:
        image, mask = image.transpose(Image.FLIP_LEFT_RIGHT), mask.transpose(Image.FLIP_LEFT_RIGHT)
    for enhance, amount in (
        (ImageEnhance.Brightness, jitter.brightness),
        (ImageEnhance.Contrast, jitter.contrast),
        (ImageEnhance.Color, jitter.colour),
    ):
        image = enhance(image).enhance(1.0 + rng.uniform(-amount, amount))
    if jitter.shear > 0:
        w, h = image.size
        s = rng.uniform(-jitter.shear, jitter.shear)
        coeffs = (1.0, s, -s * h if s > 0 else 0.0, 0.0, 1.0, 0.0)
        size = (int(w + abs(s) * h), h)
        image = image.transform(size, Image.AFFINE, coeffs, Image.BILINEAR, fillcolor=(0, 0, 0))
        mask = mask.transform(size, Image.AFFINE, coeffs, Image.BILINEAR, fillcolor=0)
    radius = rng.uniform(0, jitter.blur)
    if radius > 0.3:
        image = image.filter(ImageFilter.GaussianBlur(radius))
    if jitter.feather > 0:
        mask = mask.filter(ImageFilter.GaussianBlur(jitter.feather))
    return Cutout(image, mask)


def paste(scene: Image.Image, cut: Cutout, box: Box) -> tuple[Image.Image, np.ndarray]:
    """``cut`` resized into ``box`` (clipped to the scene); the scene and the pasted mask
    (bool, scene-sized: the pixels the product now covers)."""
    width, height = scene.size
    x1, y1 = int(round(box.x1)), int(round(box.y1))
    w, h = max(1, int(round(box.width))), max(1, int(round(box.height)))
    image = cut.image.resize((w, h), Image.BILINEAR)
    mask = cut.mask.resize((w, h), Image.BILINEAR)
    out = scene.copy()
    out.paste(image, (x1, y1), mask)
    full = np.zeros((height, width), bool)
    m = np.asarray(mask) > 127
    ox1, oy1 = max(0, x1), max(0, y1)
    ox2, oy2 = min(width, x1 + w), min(height, y1 + h)
    if ox2 > ox1 and oy2 > oy1:
        full[oy1:oy2, ox1:ox2] = m[oy1 - y1 : oy2 - y1, ox1 - x1 : ox2 - x1]
    return out, full


def mask_box(mask: np.ndarray) -> Box | None:
    """The tight box of a bool mask (pixels), None when it is empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return Box(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
