"""The ``hvf`` backbone: handcrafted visual features (seed 004, Messina et al. 2019).

Three blocks, each computed on the image scaled to ``HVF_SIZE`` pixels on its long side:

* colour: a joint HSV histogram (8 hues centred on red/orange/... x 3 saturations x 3 values);
* texture: the 59-bin histogram of uniform 8-neighbour local binary patterns (LBP);
* attractiveness (San Pedro & Siersdorfer 2009): brightness, saturation, sharpness, RMS
  contrast, colourfulness (Hasler & Suesstrunk 2003), entropy and naturalness (Huang et al.
  2006), z-scored with reference statistics of catalog and scene photos.

Histograms are square-rooted (so the cosine is the Bhattacharyya coefficient) and every block
is L2-normalised, then weighted (BLOCK_WEIGHTS) before concatenation, so no block dominates by
its size or scale.
:func:`attractiveness_stats` is public: the ranker uses the raw statistics as product features.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from embedder.base import ImageLike, l2_normalize
from embedder.batching import BatchedBackbone
from shopthelook.core.images import load_image

HVF_SIZE = 256
HSV_BINS = (8, 3, 3)
LBP_BINS = 59
STAT_NAMES = (
    "brightness",
    "saturation",
    "sharpness",
    "rms_contrast",
    "colourfulness",
    "entropy",
    "naturalness",
)
# Reference mean / std of each statistic (sharpness as log10) over 450 photos: 150 each of
# IKEA products, IKEA rooms and H&M articles (benchmarks/calibrate_hvf.py --per-source 150).
STAT_MEAN = np.array([0.737, 0.098, -2.13, 0.221, 19.9, 5.34, 0.49])
STAT_STD = np.array([0.169, 0.0874, 0.5, 0.104, 20.9, 1.92, 0.268])

# colour : texture : attractiveness. Texture counts half: on the IKEA crop -> product proxy
# (benchmarks/eval_backbone_ikea.py) look-recall@10 was colour .301, LBP .161 (below chance,
# .204: catalog photos on white are dominated by flat background), stats .276, all three at
# 1:1:1 .262, at 1:.5:.5 .305.
BLOCK_WEIGHTS = (1.0, 0.5, 0.5)


def prepare(image: ImageLike, size: int = HVF_SIZE) -> Image.Image:
    """RGB image scaled so that its long side is ``size`` (features then compare across sizes)."""
    image = load_image(image)
    width, height = image.size
    scale = size / max(width, height)
    new = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image if new == image.size else image.resize(new, Image.BILINEAR)


def colour_histogram(image: Image.Image, bins: tuple[int, int, int] = HSV_BINS) -> np.ndarray:
    """Joint HSV histogram (hue-major), summing to 1. Hue bin 0 is centred on red."""
    hsv = np.asarray(image.convert("HSV"), dtype=np.int64).reshape(-1, 3)
    nh, ns, nv = bins
    hue = ((hsv[:, 0] + 128 // nh) % 256) * nh // 256  # shift half a bin: red straddles 0
    sat = np.minimum(hsv[:, 1] * ns // 256, ns - 1)
    val = np.minimum(hsv[:, 2] * nv // 256, nv - 1)
    counts = np.bincount((hue * ns + sat) * nv + val, minlength=nh * ns * nv).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def _uniform_lbp_table() -> np.ndarray:
    """code (0..255) -> bin: the 58 uniform patterns (<= 2 circular 0/1 transitions), then 58."""
    table = np.full(256, LBP_BINS - 1, dtype=np.int64)
    next_bin = 0
    for code in range(256):
        bits = [(code >> k) & 1 for k in range(8)]
        if sum(bits[k] != bits[(k + 1) % 8] for k in range(8)) <= 2:
            table[code] = next_bin
            next_bin += 1
    assert next_bin == LBP_BINS - 1
    return table


_LBP_TABLE = _uniform_lbp_table()
# the 8 neighbours in circular order, as (row, column) offsets
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def lbp_histogram(image: Image.Image) -> np.ndarray:
    """59-bin uniform LBP histogram (radius 1, 8 neighbours) of the grey image, summing to 1."""
    grey = np.asarray(image.convert("L"), dtype=np.int16)
    h, w = grey.shape
    if h < 3 or w < 3:
        return np.full(LBP_BINS, 1.0 / LBP_BINS)
    centre = grey[1:-1, 1:-1]
    codes = np.zeros_like(centre, dtype=np.int64)
    for k, (dy, dx) in enumerate(_NEIGHBOURS):
        codes |= (grey[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx] >= centre).astype(np.int64) << k
    counts = np.bincount(_LBP_TABLE[codes].ravel(), minlength=LBP_BINS).astype(np.float64)
    return counts / counts.sum()


def _naturalness(hsv: np.ndarray) -> float:
    """Huang et al. (2006): how close skin, grass and sky pixels' saturation is to natural."""
    hue_deg = hsv[..., 0] * (360.0 / 256.0)
    sat, val = hsv[..., 1] / 255.0, hsv[..., 2] / 255.0
    usable = (val > 0.2) & (val < 0.8) & (sat > 0.1)
    groups = (  # (hue range in degrees, natural mean saturation, spread)
        ((25.0, 70.0), 0.76, 0.52),  # skin
        ((95.0, 135.0), 0.81, 0.53),  # grass
        ((185.0, 260.0), 0.43, 0.22),  # sky
    )
    total, score = 0, 0.0
    for (lo, hi), mu, sigma in groups:
        member = usable & (hue_deg >= lo) & (hue_deg <= hi)
        n = int(member.sum())
        if n:
            mean_sat = float(sat[member].mean())
            score += n * math.exp(-0.5 * ((mean_sat - mu) / sigma) ** 2)
            total += n
    return score / total if total else 0.0


def attractiveness_stats(image: ImageLike) -> dict[str, float]:
    """The seven attractiveness statistics of an image (path or PIL), at HVF_SIZE resolution.

    brightness, saturation, rms_contrast in 0..1 (mean luma, mean HSV saturation, luma std);
    sharpness = variance of the Laplacian of luma (0..1 scale); colourfulness on the 0..255
    scale (0 for grey, ~100+ for vivid images); entropy of the luma histogram in bits (0..8);
    naturalness in 0..1.
    """
    img = prepare(image)
    rgb = np.asarray(img, dtype=np.float64)
    luma = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    hsv = np.asarray(img.convert("HSV"), dtype=np.float64)
    if min(luma.shape) >= 3:
        lap = (
            luma[:-2, 1:-1]
            + luma[2:, 1:-1]
            + luma[1:-1, :-2]
            + luma[1:-1, 2:]
            - 4 * luma[1:-1, 1:-1]
        )
        sharpness = float(lap.var())
    else:
        sharpness = 0.0
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    colourfulness = math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean())
    counts = np.bincount(np.round(luma * 255).astype(np.int64).ravel(), minlength=256)
    p = counts[counts > 0] / counts.sum()
    return {
        "brightness": float(luma.mean()),
        "saturation": float(hsv[..., 1].mean() / 255.0),
        "sharpness": sharpness,
        "rms_contrast": float(luma.std()),
        "colourfulness": float(colourfulness),
        "entropy": float(-(p * np.log2(p)).sum()),
        "naturalness": _naturalness(hsv),
    }


def stats_vector(stats: dict[str, float]) -> np.ndarray:
    """The statistics z-scored against the reference (sharpness on a log scale)."""
    raw = np.array([stats[n] for n in STAT_NAMES], dtype=np.float64)
    raw[2] = math.log10(raw[2] + 1e-6)
    return (raw - STAT_MEAN) / STAT_STD


class HvfBackbone(BatchedBackbone):
    """colour | texture | attractiveness, each block L2-normalised, then weighted."""

    def __init__(self, weights: tuple[float, float, float] = BLOCK_WEIGHTS) -> None:
        self.name = "hvf"
        self.block_weights = weights
        self.dim = int(np.prod(HSV_BINS)) + LBP_BINS + len(STAT_NAMES)

    def features(self, image: Image.Image) -> np.ndarray:
        img = prepare(image)
        blocks = (
            np.sqrt(colour_histogram(img)),
            np.sqrt(lbp_histogram(img)),
            stats_vector(attractiveness_stats(img)),
        )
        return np.concatenate(
            [w * l2_normalize(b[None])[0] for w, b in zip(self.block_weights, blocks, strict=True)]
        )

    def _embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        return np.stack([self.features(img) for img in images])
