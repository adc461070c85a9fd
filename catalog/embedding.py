"""Embedding product photos for a catalog: unreadable photos are recorded, not fatal."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from shopthelook.core.errors import ImageError

log = logging.getLogger(__name__)

#: unreadable photos logged one by one; the rest are counted (the manifest lists every one)
LOGGED_FAILURES = 5


def embed_products(
    image_paths: Sequence[str], embedder, *, settings, show_progress: bool = False, chunk: int = 64
) -> tuple[np.ndarray, list[int], list[dict[str, str]]]:
    """Embed product photos; unreadable ones are recorded as failures, not fatal."""
    from tqdm import tqdm

    from shopthelook.core.images import load_image

    out: list[np.ndarray] = []
    ok: list[int] = []
    failures: list[dict[str, str]] = []
    bar = tqdm(
        total=len(image_paths), desc="embedding products", unit="img", disable=not show_progress
    )
    for start in range(0, len(image_paths), chunk):
        images, rows = [], []
        for i in range(start, min(start + chunk, len(image_paths))):
            try:
                images.append(load_image(image_paths[i], max_pixels=settings.max_image_pixels))
                rows.append(i)
            except ImageError as exc:
                failures.append({"image": str(image_paths[i]), "error": str(exc)})
                if len(failures) <= LOGGED_FAILURES:  # the manifest lists them all
                    log.warning("skipping product image: %s", exc)
        if images:
            vectors = np.asarray(embedder.embed_images(images, batch_size=settings.batch_size))
            finite = np.isfinite(vectors).all(axis=1) if vectors.ndim == 2 else []
            for i, good in zip(rows, finite, strict=True):
                if not good:  # a catalog must not hold NaN: the search would rank it anywhere
                    failures.append(
                        {"image": str(image_paths[i]), "error": "embedding is not finite"}
                    )
                    log.warning(
                        "skipping product image %s: its embedding is not finite", image_paths[i]
                    )
            out.append(vectors[finite])
            ok.extend(i for i, good in zip(rows, finite, strict=True) if good)
        bar.update(min(chunk, len(image_paths) - start))
    bar.close()
    if len(failures) > LOGGED_FAILURES:
        log.warning("%d more unreadable product image(s) skipped", len(failures) - LOGGED_FAILURES)
    vectors = np.concatenate(out) if out else np.zeros((0, embedder.dim), np.float32)
    return vectors.astype(np.float32, copy=False), ok, failures
