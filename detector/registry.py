"""Detector kinds by name: an implementation registers a factory with ``register_detector``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from detector.base import Detector

if TYPE_CHECKING:
    from shopthelook.core.config import Settings
    from shopthelook.core.taxonomy import Taxonomy

DetectorFactory = Callable[["Settings", "Taxonomy"], Detector]
_REGISTRY: dict[str, DetectorFactory] = {}


def register_detector(kind: str) -> Callable[[DetectorFactory], DetectorFactory]:
    """Register ``factory(settings, taxonomy) -> Detector`` under ``kind``."""

    def wrap(factory: DetectorFactory) -> DetectorFactory:
        _REGISTRY[kind] = factory
        return factory

    return wrap


def detector_kinds() -> list[str]:
    return sorted(_REGISTRY)


def detector_factory(kind: str) -> DetectorFactory | None:
    return _REGISTRY.get(kind)
