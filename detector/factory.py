"""``create_detector``: the detector that the settings describe, built-in kinds registered."""

from __future__ import annotations

from typing import TYPE_CHECKING

import detector.yolo  # noqa: F401  (registers the built-in kind; ultralytics loads on first use)
from detector.base import Detector
from detector.registry import detector_factory, detector_kinds
from shopthelook.core.errors import ConfigError

if TYPE_CHECKING:
    from shopthelook.core.config import Settings
    from shopthelook.core.taxonomy import Taxonomy


def create_detector(
    settings: Settings, taxonomy: Taxonomy | None = None, *, kind: str | None = None
) -> Detector:
    """The detector that ``settings`` describe (``kind`` defaults to settings.detector or yolo)."""
    kind = kind or getattr(settings, "detector", None) or "yolo"
    if kind == "auto":  # the pipeline picks a catalog's own fitted detector before this
        kind = "yolo"
    factory = detector_factory(kind)
    if factory is None:
        raise ConfigError(f"unknown detector {kind!r}; known: {detector_kinds()}")
    if taxonomy is None:
        from shopthelook.core.taxonomy import load_taxonomy

        taxonomy = load_taxonomy(settings.taxonomy)
    return factory(settings, taxonomy)
