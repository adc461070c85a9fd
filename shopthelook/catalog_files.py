"""The catalog folder on disk: index file names, the atomic swap, and the consistency check
that a loaded catalog's table, embeddings and indexes agree."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from pathlib import Path

import pandas as pd

from shopthelook import ann
from shopthelook.errors import CatalogError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def index_file_name(category: str, used: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", category).strip("._") or "category"
    name, n = stem, 1
    while name in used:
        n += 1
        name = f"{stem}-{n}"
    used.add(name)
    return f"{name}.faiss"


def weights_fingerprint(backbone: str, weights: str) -> str | None:
    """sha256 (16 hex) of the detector weights a yolo backbone embeds with, else None: a
    catalog built with other YOLO weights lives in another space under the same name."""
    if "yolo" not in backbone or not Path(weights).is_file():
        return None
    digest = hashlib.sha256()
    with open(weights, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def table_hash(table: pd.DataFrame) -> str:
    cols = [c for c in ("product_id", "image", "category") if c in table.columns]
    hashed = pd.util.hash_pandas_object(table[cols], index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def swap_in(tmp: Path, out: Path) -> None:
    if out.exists():
        if not (out / MANIFEST).exists() and any(out.iterdir()):
            raise CatalogError(f"{out} exists and is not a catalog folder; choose another --out")
        old = out.parent / f".{out.name}.old-{os.getpid()}-{time.monotonic_ns()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def consistency_problems(products, vectors, manifest, indexes) -> list[str]:
    problems = []
    if len(products) != len(vectors):
        problems.append(f"table has {len(products)} rows but {len(vectors)} embeddings")
    if vectors.ndim != 2 or vectors.shape[1] != manifest.get("dim"):
        problems.append(f"embeddings are {vectors.shape}, manifest says dim {manifest.get('dim')}")
    counts = products.groupby("category").size().to_dict() if len(products) else {}
    row_ids = products.groupby("category")["row_id"].agg(set).to_dict() if len(products) else {}
    for category, index in indexes.items():
        stored = ann.stored_ids(index)
        if len(stored) != counts.get(category, 0):
            problems.append(
                f"index {category!r} holds {len(stored)} vectors but the table "
                f"has {counts.get(category, 0)} products in that category"
            )
        elif set(stored.tolist()) != row_ids.get(category, set()):
            problems.append(
                f"index {category!r} holds ids that are not the table's {category!r} products"
            )
    missing = set(counts) - set(indexes)
    if missing:
        problems.append(f"no index for categories {sorted(missing)[:5]}")
    return problems
