"""Loading ultralytics YOLO weights once per process (the detector and the yolo backbone share them)."""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from pathlib import Path

from shopthelook.errors import ConfigError

log = logging.getLogger(__name__)
_lock = threading.Lock()


@lru_cache(maxsize=4)
def _load(weights: str):
    from ultralytics import YOLO

    return YOLO(weights, task="detect")


def load_yolo(weights: str | Path):
    """The ultralytics YOLO object for ``weights`` (a path or an ultralytics model name)."""
    weights = str(weights)
    if ("/" in weights or weights.endswith(".pt")) and not Path(weights).exists():
        if "/" in weights:
            raise ConfigError(
                f"detector weights {weights}: no such file (set detector_weights to a YOLO .pt)"
            )
    with _lock:
        try:
            return _load(weights)
        except FileNotFoundError as exc:
            raise ConfigError(f"detector weights {weights}: cannot be loaded ({exc})") from None
