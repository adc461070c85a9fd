"""Catalog-taught detection: the catalog's own product photos teach the engine to find its
categories in scene photos (cut-outs pasted into training scenes -> region classifier).

``fit_detector(catalog, backgrounds, settings=..., taxonomy=...)`` fits one,
``save_into_catalog`` publishes it inside the catalog folder, and the pipeline loads it
with ``load_catalog_detector``. Detector kinds ``taught`` and ``zero-shot`` register with
``detector.registry`` when this package is imported.
"""

from catalog.taught.detector import (
    TaughtDetector,
    load_catalog_detector,
    load_detector_folder,
    zero_shot_detector,
)
from catalog.taught.files import (
    FittedDetector,
    carry_over,
    has_detector,
    learnable_categories,
    save_into_catalog,
)
from catalog.taught.fit import FitSettings, fit_detector
from catalog.taught.split import scene_split, select_scenes

__all__ = [
    "FitSettings",
    "FittedDetector",
    "TaughtDetector",
    "carry_over",
    "fit_detector",
    "has_detector",
    "learnable_categories",
    "load_catalog_detector",
    "load_detector_folder",
    "save_into_catalog",
    "scene_split",
    "select_scenes",
    "zero_shot_detector",
]
