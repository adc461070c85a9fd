"""The catalog folder on disk: writing it atomically, reading it back with every check
(format version, backbone, head, the table, embeddings and indexes agreeing), index file
names and the fingerprints recorded in the manifest.

On disk a catalog is a folder::

    manifest.json       format version, backbone, head, dimension, counts, index kinds, hash
    products.parquet    the product table (product_id, image, category, name, ...) + row_id
    embeddings.npy      float32 [n, d], row i belongs to products row i
    indexes/<n>.faiss   one index per category, ids = row_id

Every write goes to a sibling temporary folder that replaces the old one in a rename, so a
half-written catalog is never visible and a failed build leaves the old catalog intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd

from catalog import ann
from shopthelook.core.errors import CatalogError
from shopthelook.core.fingerprint import file_fingerprint

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
    """The fingerprint of the detector weights a yolo backbone embeds with, else None (the
    manifest's ``weights_sha256``, kept for catalogs from before ``weights_fingerprints``)."""
    return file_fingerprint(weights) if "yolo" in backbone else None


def fingerprint_mismatches(manifest: dict[str, Any], current: dict[str, str]) -> list[str]:
    """The blocks whose weights differ from those the catalog was embedded with."""
    recorded = manifest.get("weights_fingerprints") or {}
    return sorted(b for b, f in current.items() if b in recorded and recorded[b] != f)


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


def write_folder(
    out: str | Path,
    products: pd.DataFrame,
    vectors: np.ndarray,
    indexes: dict[str, faiss.Index],
    manifest: dict[str, Any],
) -> dict[str, Any]:
    """Write a catalog folder atomically; returns the manifest as written."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{time.monotonic_ns()}"
    try:
        (tmp / "indexes").mkdir(parents=True)
        products.to_parquet(tmp / "products.parquet", index=False)
        np.save(tmp / "embeddings.npy", vectors)
        used: set[str] = set()
        files = {}
        for category, index in indexes.items():
            fname = index_file_name(category, used)
            faiss.write_index(index, str(tmp / "indexes" / fname))
            files[category] = fname
        written = dict(
            manifest,
            index_files=files,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        (tmp / MANIFEST).write_text(json.dumps(written, indent=2, sort_keys=True))
        swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return written


def read_folder(
    path: str | Path,
    *,
    expected_backbone: str | None = None,
    expected_head: str | None = None,
) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any], dict[str, faiss.Index]]:
    """(products, float32 vectors, manifest, indexes) of a catalog folder, or a CatalogError
    that says what is wrong and what to do."""
    path = Path(path)
    manifest_file = path / MANIFEST
    if not path.is_dir():
        raise CatalogError(
            f"catalog {path}: no such folder (build one with 'shopthelook catalog build')"
        )
    if not manifest_file.exists():
        raise CatalogError(
            f"catalog {path}: no {MANIFEST}; not a catalog folder or a half-written one"
        )
    try:
        manifest = json.loads(manifest_file.read_text())
    except json.JSONDecodeError as exc:
        raise CatalogError(f"catalog {path}: {MANIFEST} is corrupt ({exc})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CatalogError(
            f"catalog {path}: format version {manifest.get('format_version')} is not "
            f"{FORMAT_VERSION}; rebuild it with this version of shopthelook"
        )
    if expected_backbone:
        from embedder.registry import canonical_backbone_name

        expected_backbone = canonical_backbone_name(expected_backbone)
    if expected_backbone and manifest.get("backbone") != expected_backbone:
        raise CatalogError(
            f"catalog {path} was built with backbone {manifest.get('backbone')!r}, not "
            f"{expected_backbone!r}: rebuild it with --backbone {expected_backbone} or use "
            f"backbone {manifest.get('backbone')!r}"
        )
    if expected_head and manifest.get("head") != expected_head:
        raise CatalogError(
            f"catalog {path} was built with head {manifest.get('head')!r}, not "
            f"{expected_head!r}: rebuild it with that head"
        )
    try:
        products = pd.read_parquet(path / "products.parquet")
        vectors = np.load(path / "embeddings.npy")
        indexes = {
            c: faiss.read_index(str(path / "indexes" / f))
            for c, f in manifest.get("index_files", {}).items()
        }
    except (OSError, ValueError, RuntimeError) as exc:
        raise CatalogError(f"catalog {path}: files are missing or corrupt ({exc})") from None
    problems = consistency_problems(products, vectors, manifest, indexes)
    if problems:
        raise CatalogError(f"catalog {path}: {'; '.join(problems)}; rebuild the catalog")
    return products, vectors.astype(np.float32, copy=False), manifest, indexes
