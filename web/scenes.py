"""The scenes the site can show: the data root's IKEA rooms plus photos people uploaded.

Uploaded photos live in an UploadStore (``web.uploads``: owners, quotas, expiry) under the
instance folder. A scene id never becomes part of a file path unless it matches the upload id
pattern exactly.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from web.uploads import UPLOAD_ID, Receipt, UploadPolicy, UploadStore

log = logging.getLogger(__name__)


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
    def __init__(
        self,
        gallery: pd.DataFrame | None,
        upload_dir: Path,
        policy: UploadPolicy | None = None,
        thumbs: Path | None = None,
    ) -> None:
        self.upload_dir = Path(upload_dir)
        self.store = UploadStore(self.upload_dir, policy or UploadPolicy(), thumbs)
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
        return len(self._gallery) + len(self.store)

    def gallery(self) -> list[Scene]:
        return list(self._gallery.values())

    def uploads(self, owner: str | None, limit: int | None = None) -> list[Scene]:
        """The photos ``owner`` uploaded (newest first); nobody else's, none without owner."""
        return [self._upload_scene(sid) for sid in self.store.owned_by(owner, limit)]

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
        if UPLOAD_ID.match(scene_id) and self.store.path(scene_id) is not None:
            return self._upload_scene(scene_id)
        raise UnknownScene(scene_id)

    def _upload_scene(self, scene_id: str) -> Scene:
        return Scene(scene_id, self.upload_dir / f"{scene_id}.jpg", "Your photo", None, "upload")

    def add_upload(
        self, data: bytes, *, owner: str, max_pixels: int, name: str = "upload"
    ) -> Receipt:
        """Validate and store an uploaded photo for ``owner``; raises ImageError for anything
        unreadable and QuotaError when a quota is full."""
        return self.store.add(data, owner=owner, max_pixels=max_pixels, name=name)

    def undo_upload(self, receipt: Receipt) -> None:
        self.store.undo(receipt)
