"""Detector stage: find the objects in a scene photo and name their catalog categories.

``create_detector(settings, taxonomy)`` builds the configured detector (ultralytics YOLO);
``detector.regions`` turns a user-drawn box, or the whole scene, into a Detection too.
A new detector subclasses :class:`Detector` and registers a factory with
``register_detector``; ultralytics itself loads only when a YOLO model is first used.
"""

from detector.base import Detector, box_iou, covered_share
from detector.factory import create_detector
from detector.regions import scene_region, user_region
from detector.registry import detector_kinds, register_detector
from detector.yolo import YoloDetector

__all__ = [
    "Detector",
    "YoloDetector",
    "box_iou",
    "covered_share",
    "create_detector",
    "detector_kinds",
    "register_detector",
    "scene_region",
    "user_region",
]
