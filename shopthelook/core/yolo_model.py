"""Loading ultralytics YOLO weights once per process (the detector and the yolo backbone share them).

The YOLO object is shared, and ultralytics' predictor keeps per-call state on it, so every
caller that runs it wraps the call in :func:`model_lock` (a web server runs requests in threads).
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from pathlib import Path

from shopthelook.core.errors import ConfigError

log = logging.getLogger(__name__)
_lock = threading.Lock()
_model_locks: dict[int, threading.RLock] = {}


@lru_cache(maxsize=4)
def _load(weights: str):
    from ultralytics import YOLO

    return YOLO(weights, task="detect")


def load_yolo(weights: str | Path):
    """The ultralytics YOLO object for ``weights`` (a path, a model name, or a ``.yaml`` config).

    Raises ConfigError naming the weights when they are missing or cannot be loaded; no
    download is attempted for a path that does not exist.
    """
    weights = str(weights)
    is_path = "/" in weights or "\\" in weights
    if is_path and not Path(weights).exists():
        raise ConfigError(
            f"detector weights {weights}: no such file (set detector_weights to a YOLO .pt file)"
        )
    if Path(weights).is_file():
        weights = str(Path(weights).resolve())  # one cached model per file, however it is named
    with _lock:
        try:
            model = _load(weights)
        except Exception as exc:  # ultralytics raises many types: bad pickle, download failure
            raise ConfigError(
                f"detector weights {weights}: cannot be loaded ({type(exc).__name__}: "
                f"{str(exc).strip()[:200]}); set detector_weights to a YOLO .pt file"
            ) from None
        _model_locks.setdefault(id(model), threading.RLock())
    return model


def model_lock(model) -> threading.RLock:
    """The lock to hold while running ``model`` (one per loaded YOLO object)."""
    with _lock:
        return _model_locks.setdefault(id(model), threading.RLock())
