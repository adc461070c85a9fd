"""Detector stage: find the objects in a scene photo and name their catalog categories.

``create_detector(settings, taxonomy)`` builds the configured detector (ultralytics YOLO);
``detector.regions`` turns a user-drawn box, or the whole scene, into a Detection too.
"""

from detector.base import (
    Detector,
    box_iou,
    covered_share,
    create_detector,
    detector_kinds,
    register_detector,
)
from detector.regions import scene_region, user_region

__all__ = [
    "Detector",
    "box_iou",
    "covered_share",
    "create_detector",
    "detector_kinds",
    "register_detector",
    "scene_region",
    "user_region",
]


def __getattr__(name: str):
    # YoloDetector imports ultralytics (slow, and it changes torch's threads): load it on use.
    if name == "YoloDetector":
        from detector.yolo import YoloDetector

        return YoloDetector
    raise AttributeError(f"module 'detector' has no attribute {name!r}")
