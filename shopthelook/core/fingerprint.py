"""Short content fingerprints of weight files, recorded in manifests so that a catalog embedded
with one set of weights is never searched with vectors from another set under the same name."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path


def file_fingerprint(path: str | Path) -> str | None:
    """sha256 of a file's bytes (16 hex digits), or None when it is not a file."""
    path = Path(path)
    if not path.is_file():
        return None
    stat = path.stat()
    return _hash(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _hash(path: str, size: int, mtime_ns: int) -> str:
    # keyed on size and mtime too: a file replaced in place is hashed again
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
