"""Handcrafted attractiveness statistics of a product photo (seed 004, after San Pedro &
Siersdorfer 2009): brightness, saturation, its spread, RMS contrast, colourfulness, sharpness
and entropy, computed on a small thumbnail so a 6,000-image catalog takes about a minute.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from shopthelook.core.errors import ImageError
from shopthelook.core.images import load_image

log = logging.getLogger(__name__)

ATTRACTIVENESS = (
    "brightness",
    "saturation",
    "saturation_std",
    "contrast",
    "colorfulness",
    "sharpness",
    "entropy",
)
THUMBNAIL = 128


def image_statistics(rgb: np.ndarray) -> np.ndarray:
    """The ATTRACTIVENESS values of one uint8 RGB array [h, w, 3]."""
    x = rgb.astype(np.float32) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    hi, lo = x.max(axis=2), x.min(axis=2)
    saturation = np.where(hi > 0, (hi - lo) / np.maximum(hi, 1e-6), 0.0)
    gray = 0.299 * r + 0.587 * g + 0.114 * b
    rg, yb = r - g, 0.5 * (r + g) - b
    colorfulness = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    lap = (
        -4 * gray[1:-1, 1:-1] + gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:]
    )
    hist = np.bincount((gray * 255).astype(np.int64).ravel(), minlength=256).astype(np.float64)
    p = hist[hist > 0] / hist.sum()
    return np.asarray(
        [
            hi.mean(),
            saturation.mean(),
            saturation.std(),
            gray.std(),
            colorfulness,
            lap.var() if lap.size else 0.0,
            -(p * np.log2(p)).sum(),
        ],
        dtype=np.float32,
    )


def compute_attractiveness(
    products: pd.DataFrame, *, cache: str | Path | None = None, show_progress: bool = False
) -> pd.DataFrame:
    """ATTRACTIVENESS per product (index product_id) from the ``image`` column.

    Unreadable images get NaN rows (logged) instead of stopping the job. With ``cache`` the
    table is read from / written to that Parquet file, computing only products not in it.
    """
    ids = products["product_id"].astype(str).tolist()
    known = pd.DataFrame(columns=list(ATTRACTIVENESS), dtype=np.float32)
    if cache is not None and Path(cache).exists():
        known = pd.read_parquet(cache)
        known.index = known.index.astype(str)
    todo = [i for i, pid in enumerate(ids) if pid not in known.index]
    rows, failed = [], 0
    images: Sequence[str] = products["image"].astype(str).tolist()
    for i in tqdm(todo, desc="attractiveness", disable=not show_progress):
        try:
            img = load_image(images[i])
            img.thumbnail((THUMBNAIL, THUMBNAIL))
            rows.append(image_statistics(np.asarray(img)))
        except ImageError as exc:
            failed += 1
            log.warning("attractiveness: %s", exc)
            rows.append(np.full(len(ATTRACTIVENESS), np.nan, np.float32))
    if failed:
        log.warning("attractiveness: %d of %d images unreadable (NaN features)", failed, len(todo))
    if todo:
        fresh = pd.DataFrame(
            np.vstack(rows), index=[ids[i] for i in todo], columns=list(ATTRACTIVENESS)
        )
        known = pd.concat([known, fresh]) if len(known) else fresh
        if cache is not None:
            Path(cache).parent.mkdir(parents=True, exist_ok=True)
            known.to_parquet(cache)
    return known.reindex(ids)
