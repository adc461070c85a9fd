"""The fixed split of scene photos into training and held-out scenes.

A scene is *held out* when the first 8 hex digits of sha1(scene id) modulo 10 is at least
``TRAIN_SHARE_TENTHS`` (6): about 40% of the scenes. Only training scenes are backgrounds for
synthetic scenes or used to tune anything; every quality number is measured on held-out
scenes. The split depends on the id alone, so it is the same on every machine and run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

TRAIN_SHARE_TENTHS = 6
SPLITS = ("train", "heldout", "all")


def scene_split(scene_id: str) -> str:
    """ "train" or "heldout" for one scene id."""
    bucket = int(hashlib.sha1(str(scene_id).encode()).hexdigest()[:8], 16) % 10
    return "train" if bucket < TRAIN_SHARE_TENTHS else "heldout"


def select_scenes(scene_ids: Iterable[str], split: str) -> list[str]:
    """The ids of ``split`` ("train", "heldout" or "all"), in their given order."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: choose one of {', '.join(SPLITS)}")
    ids = [str(s) for s in scene_ids]
    return ids if split == "all" else [s for s in ids if scene_split(s) == split]
