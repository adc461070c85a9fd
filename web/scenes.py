"""The scenes the site can show: the data root's IKEA rooms plus photos people uploaded.

Uploaded photos are re-encoded as JPEG under the instance folder and named by a hash of their
pixels, so the same photo gets the same scene id and its page can be re-opened later. A scene
id never becomes part of a file path unless it matches the upload id pattern exactly.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from shopthelook.core.images import load_image

log = logging.getLogger(__name__)

UPLOAD_ID = re.compile(r"^u-[0-9a-f]{16}$")


class UnknownScene(LookupError):
    """No scene has this id."""


@dataclass(frozen=True)
class Scene:
    scene_id: str
    image: Path
    title: str
    category: str | None = None
    source: str = "gallery"  # "gallery" (data root) or "upload"


def title_from_room_id(room_id: str) -> str:
    """``ikea-a-bright-kitchen-idea__136...-s4`` -> ``A bright kitchen idea``."""
    stem = room_id.split("__", 1)[0]
    stem = re.sub(r"^ikea-", "", stem)
    words = stem.replace("-", " ").strip()
    return (words[:1].upper() + words[1:]) if words else room_id


class SceneLibrary:
    def __init__(self, gallery: pd.DataFrame | None, upload_dir: Path) -> None:
        self.upload_dir = Path(upload_dir)
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._gallery: dict[str, Scene] = {}
        if gallery is not None and len(gallery):
            cat_col = next((c for c in ("room_category", "category") if c in gallery.columns), None)
            for row in gallery.to_dict("records"):
                sid = str(row["scene_id"])
                self._gallery[sid] = Scene(
                    scene_id=sid,
                    image=Path(row["image"]),
                    title=title_from_room_id(sid),
                    category=(str(row[cat_col]) if cat_col and pd.notna(row[cat_col]) else None),
                )

    def __len__(self) -> int:
        return len(self._gallery) + len(self.uploads())

    def gallery(self) -> list[Scene]:
        return list(self._gallery.values())

    def uploads(self, limit: int | None = None) -> list[Scene]:
        files = sorted(self.upload_dir.glob("u-*.jpg"), key=lambda p: -p.stat().st_mtime)
        scenes = [self._upload_scene(p.stem) for p in files if UPLOAD_ID.match(p.stem)]
        return scenes[:limit] if limit else scenes

    def has(self, scene_id: str) -> bool:
        try:
            self.get(scene_id)
        except UnknownScene:
            return False
        return True

    def get(self, scene_id: str) -> Scene:
        scene_id = str(scene_id)
        if scene_id in self._gallery:
            return self._gallery[scene_id]
        if UPLOAD_ID.match(scene_id) and (self.upload_dir / f"{scene_id}.jpg").is_file():
            return self._upload_scene(scene_id)
        raise UnknownScene(scene_id)

    def _upload_scene(self, scene_id: str) -> Scene:
        return Scene(scene_id, self.upload_dir / f"{scene_id}.jpg", "Your photo", None, "upload")

    def add_upload(self, data: bytes, *, max_pixels: int, name: str = "upload") -> Scene:
        """Validate and store an uploaded photo; raises ImageError for anything unreadable."""
        image = load_image(data, max_pixels=max_pixels, name=name)
        digest = hashlib.sha256(image.tobytes() + repr(image.size).encode()).hexdigest()[:16]
        scene_id = f"u-{digest}"
        target = self.upload_dir / f"{scene_id}.jpg"
        with self._lock:
            if not target.exists():
                buffer = io.BytesIO()
                image.save(buffer, "JPEG", quality=90)
                tmp = target.with_suffix(".part")
                tmp.write_bytes(buffer.getvalue())
                tmp.replace(target)
                log.info("stored upload %s (%dx%d)", scene_id, *image.size)
            else:
                target.touch()  # most recent first in the gallery
        return self._upload_scene(scene_id)
