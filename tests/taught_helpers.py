"""A small catalog-taught IKEA detector for the shared tests, fitted once and cached.

The catalog holds a few IKEA categories (hvf backbone: fast to embed); the fit uses a few
synthetic scenes on training rooms only. It is cached under test-artifacts/ by a hash of the
code and taxonomy it depends on, so a changed fit is refitted.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "test-artifacts" / "taught"
CATEGORIES = ("lamp", "rug", "cushion", "storage", "table", "sofa", "chair", "curtains")
PER_CATEGORY = 8
SCENES = 40


def _code_key() -> str:
    h = hashlib.sha256()
    files = sorted((REPO / "catalog" / "taught").glob("*.py")) + [
        REPO / "data" / "taxonomy.toml",
    ]
    for f in files + [Path(__file__)]:
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def taught_catalog(ikea_root: Path, weights: Path) -> Path:
    """The folder of a small IKEA catalog with a fitted detector (built on first use)."""
    from catalog import Catalog
    from catalog.taught import (
        FitSettings,
        fit_detector,
        has_detector,
        save_into_catalog,
    )
    from embedder import create_embedder
    from shopthelook.commands.detector_fit import background_scenes
    from shopthelook.core.config import load_settings
    from shopthelook.core.datasets import load_products
    from shopthelook.core.taxonomy import load_taxonomy

    out = CACHE / f"ikea-{_code_key()}"
    if has_detector(out):
        return out
    settings = load_settings(
        backbone="hvf", data_root=ikea_root.parent, detector_weights=str(weights), threads=1
    )
    taxonomy = load_taxonomy()
    products = load_products("ikea", data_root=ikea_root.parent)
    products["category"] = taxonomy.categorize_table(products)
    picked = pd.concat(
        products[products["category"] == c].head(PER_CATEGORY) for c in CATEGORIES
    ).drop(columns=["category"])
    catalog = Catalog.build(
        picked, embedder=create_embedder(settings), taxonomy=taxonomy, out=out, settings=settings
    )
    # the training rooms and their product lists, as `catalog fit-detector --dataset ikea` reads them
    dataset = argparse.Namespace(fit_scenes_source=None, dataset="ikea", scene_products=None)
    rooms, shown = background_scenes(dataset, settings)
    fitted, _, _ = fit_detector(
        catalog,
        rooms,
        settings=settings,
        taxonomy=taxonomy,
        fit=FitSettings(scenes=SCENES, cutouts_per_category=PER_CATEGORY),
        scene_products=shown,
    )
    save_into_catalog(out, fitted)
    return out
