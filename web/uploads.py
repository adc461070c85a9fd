"""Photos people upload: owned by who uploaded them, counted against quotas, expired in time.

A photo is decoded (a few at a time: decoding a 40-Mpx PNG takes over 100 MB), reduced to
``max_side`` pixels on its long side (JPEGs are decoded at reduced size straight away),
re-encoded as JPEG and named by a hash of its pixels, so the same photo gets the same id.
Beside each ``u-<hash>.jpg`` a ``u-<hash>.json`` records when it was stored and its owners
(hashed keys: a browser session or an API client). Owners see their photos listed; anyone
with the id can open one (the id is unguessable, so a link can be shared) until it expires.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from shopthelook.core.errors import QuotaError
from shopthelook.core.images import load_image

log = logging.getLogger(__name__)

UPLOAD_ID = re.compile(r"^u-[0-9a-f]{16}$")
THUMB_SIDE = 360


def thumb_path(image: Path, folder: Path) -> Path:
    """Where the gallery's small copy of a scene photo is kept."""
    digest = hashlib.sha1(str(image).encode()).hexdigest()[:16]
    return folder / f"{digest}-{THUMB_SIDE}.jpg"


@dataclass(frozen=True)
class UploadPolicy:
    #: seconds an upload is kept after it was last stored (0: forever)
    ttl_seconds: float = 7 * 24 * 3600
    #: photos one owner may have stored at once
    per_owner: int = 50
    #: photos and bytes stored for everybody together
    total: int = 5000
    total_bytes: int = 2 * 1024**3
    #: long side of the stored photo (larger ones are reduced: the detector uses 640 px)
    max_side: int = 4096
    #: photos decoded at the same time
    decode_slots: int = 2


@dataclass
class _Meta:
    created: float
    size: int
    owners: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Receipt:
    """What one ``add`` changed, so that a request refused later can take it back."""

    scene_id: str
    owner: str
    new_file: bool
    new_owner: bool
    #: stored pixels per pixel of the photo as sent (1.0 unless it was reduced)
    scale: float = 1.0


class UploadStore:
    def __init__(self, folder: Path, policy: UploadPolicy, thumbs: Path | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.thumbs = thumbs
        self.policy = policy
        self._lock = threading.Lock()
        self._decode = threading.BoundedSemaphore(max(1, policy.decode_slots))
        self._meta: dict[str, _Meta] = {}
        for image in self.folder.glob("u-*.jpg"):
            if UPLOAD_ID.match(image.stem):
                self._meta[image.stem] = self._read_meta(image)
        self.purge_expired()

    def _read_meta(self, image: Path) -> _Meta:
        try:
            data = json.loads(image.with_suffix(".json").read_text())
            return _Meta(float(data["created"]), image.stat().st_size, set(data["owners"]))
        except (OSError, ValueError, KeyError, TypeError):
            # an upload from before owners were recorded: it is listed for nobody
            stat = image.stat()
            return _Meta(stat.st_mtime, stat.st_size)

    def _write_meta(self, scene_id: str, meta: _Meta) -> None:
        target = self.folder / f"{scene_id}.json"
        tmp = target.with_suffix(f".json.{os.getpid()}.part")
        tmp.write_text(json.dumps({"created": meta.created, "owners": sorted(meta.owners)}))
        tmp.replace(target)

    # -- reading ------------------------------------------------------------------------
    def _expired(self, meta: _Meta, now: float) -> bool:
        ttl = self.policy.ttl_seconds
        return bool(ttl) and now - meta.created > ttl

    def _sync_locked(self) -> None:
        """Take in what other server processes (``serve --workers``) stored or deleted."""
        on_disk = {p.stem for p in self.folder.glob("u-*.jpg") if UPLOAD_ID.match(p.stem)}
        for gone in set(self._meta) - on_disk:
            self._meta.pop(gone, None)
        for new in on_disk - set(self._meta):
            try:
                self._meta[new] = self._read_meta(self.folder / f"{new}.jpg")
            except OSError:  # deleted meanwhile
                pass

    def path(self, scene_id: str) -> Path | None:
        """The photo of an upload that exists and has not expired."""
        with self._lock:
            meta = self._meta.get(scene_id)
            if meta is None and UPLOAD_ID.match(scene_id):
                image = self.folder / f"{scene_id}.jpg"
                if image.is_file():  # stored by another server process
                    try:
                        meta = self._meta[scene_id] = self._read_meta(image)
                    except OSError:
                        meta = None
            if meta is None or self._expired(meta, time.time()):
                return None
        image = self.folder / f"{scene_id}.jpg"
        return image if image.is_file() else None

    def owned_by(self, owner: str | None, limit: int | None = None) -> list[str]:
        """The ids of an owner's uploads, newest first (none for no owner)."""
        if not owner:
            return []
        now = time.time()
        with self._lock:
            self._sync_locked()
            mine = [
                (m.created, sid)
                for sid, m in self._meta.items()
                if owner in m.owners and not self._expired(m, now)
            ]
        ids = [sid for _, sid in sorted(mine, reverse=True)]
        return ids[:limit] if limit else ids

    def __len__(self) -> int:
        with self._lock:
            return len(self._meta)

    # -- writing ------------------------------------------------------------------------
    def add(self, data: bytes, *, owner: str, max_pixels: int, name: str = "upload") -> Receipt:
        """Validate, reduce and store a photo for ``owner``; ImageError for anything
        unreadable, QuotaError when the owner's or the site's quota is full."""
        self.purge_expired()
        with self._lock:  # a full site refuses before spending a decode on it
            self._check_total_locked(0)
        with self._decode:  # bounded: each decode of a large photo holds its pixels
            image = load_image(
                data, max_pixels=max_pixels, name=name, max_side=self.policy.max_side
            )
            sent = _sent_side(data)
            digest = hashlib.sha256(image.tobytes() + repr(image.size).encode()).hexdigest()[:16]
            scene_id = f"u-{digest}"
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=90)
        scale = max(image.size) / sent if sent else 1.0
        target = self.folder / f"{scene_id}.jpg"
        with self._lock:
            meta = self._meta.get(scene_id)
            new_file = meta is None or not target.is_file()
            if meta is None or owner not in meta.owners:
                self._check_owner_locked(owner)
            if new_file:
                self._check_total_locked(len(buffer.getvalue()))
                tmp = target.with_suffix(f".{os.getpid()}.part")
                tmp.write_bytes(buffer.getvalue())
                tmp.replace(target)
                meta = _Meta(time.time(), len(buffer.getvalue()))
                log.info("stored upload %s (%dx%d)", scene_id, *image.size)
            new_owner = owner not in meta.owners
            meta.owners.add(owner)
            meta.created = time.time()  # stored again: it lives another ttl
            self._meta[scene_id] = meta
            self._write_meta(scene_id, meta)
        return Receipt(scene_id, owner, new_file, new_owner, min(1.0, scale))

    def undo(self, receipt: Receipt) -> None:
        """Take back an ``add`` whose request was refused afterwards."""
        with self._lock:
            meta = self._meta.get(receipt.scene_id)
            if meta is None:
                return
            if receipt.new_owner:
                meta.owners.discard(receipt.owner)
            if receipt.new_file and not meta.owners:
                self._delete_locked(receipt.scene_id)
            else:
                self._write_meta(receipt.scene_id, meta)

    def _check_owner_locked(self, owner: str) -> None:
        p = self.policy
        mine = sum(owner in m.owners for m in self._meta.values())
        if mine >= p.per_owner:
            raise QuotaError(
                f"you have {mine} photos stored, the most one shopper may keep; they expire "
                f"{_after(p.ttl_seconds)} — upload again then, or reopen one you uploaded"
            )

    def _check_total_locked(self, extra_bytes: int) -> None:
        p = self.policy
        stored = sum(m.size for m in self._meta.values())
        if len(self._meta) >= p.total or stored + extra_bytes > p.total_bytes:
            raise QuotaError(
                "this site holds as many uploaded photos as it may keep; try again later"
            )

    def purge_expired(self) -> int:
        """Delete expired uploads (their photo, record and thumbnail); returns how many."""
        now = time.time()
        with self._lock:
            gone = [sid for sid, m in self._meta.items() if self._expired(m, now)]
            for sid in gone:
                self._delete_locked(sid)
        if gone:
            log.info("%d expired upload(s) deleted", len(gone))
        return len(gone)

    def _delete_locked(self, scene_id: str) -> None:
        self._meta.pop(scene_id, None)
        image = self.folder / f"{scene_id}.jpg"
        paths = [image, image.with_suffix(".json")]
        if self.thumbs is not None:
            paths.append(thumb_path(image, self.thumbs))
        for path in paths:
            path.unlink(missing_ok=True)


def _after(seconds: float) -> str:
    if not seconds:
        return "never"
    hours = seconds / 3600
    return f"{hours / 24:g} days after upload" if hours >= 48 else f"{hours:g} hours after upload"


def _sent_side(data: bytes) -> int:
    """The long side of the photo as sent (upright or not: only its scale matters)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return max(img.size)
    except Exception:  # load_image has already accepted it: this cannot really fail
        return 0
