"""The catalog folder on disk: writing it atomically, reading it back with every check
(format version, backbone, head, the table, embeddings and indexes agreeing), index file
names and the fingerprints recorded in the manifest.

On disk a catalog is a folder::

    manifest.json       format version, backbone, head, dimension, counts, index kinds, hash
    products.parquet    the product table (product_id, image, category, name, ...) + row_id
    embeddings.npy      float32 [n, d], row i belongs to products row i
    indexes/<n>.faiss   one index per category, ids = row_id

Every write goes to a sibling temporary folder that becomes the catalog in one atomic step
(``catalog.swap``: the path is a link to a versioned folder), so a half-written catalog is never
visible, a reader never finds the folder missing, and a failed or killed build leaves the old
catalog intact.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd

from catalog import ann
from catalog.swap import prune, publish, resolve_version, temp_folder
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
    """Make the finished folder ``tmp`` the catalog at ``out`` (atomically for readers)."""
    if out.exists() and not out.is_symlink():
        if not out.is_dir() or (not (out / MANIFEST).exists() and any(out.iterdir())):
            raise CatalogError(f"{out} exists and is not a catalog folder; choose another --out")
        if not any(out.iterdir()):
            out.rmdir()  # an empty folder made for the catalog
    publish(tmp, out)


def existing_product_count(out: str | Path) -> int | None:
    """How many products the catalog at ``out`` holds by its manifest (None: no catalog)."""
    try:
        manifest = json.loads((resolve_version(Path(out)) / MANIFEST).read_text())
        return int(manifest["n_products"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
    recorded = manifest.get("counts")
    if isinstance(recorded, dict):
        live = {c: ann.live_count(i) for c, i in indexes.items()}
        wrong = sorted(c for c in set(recorded) | set(live) if recorded.get(c) != live.get(c))
        if wrong:
            c = wrong[0]
            problems.append(
                f"manifest counts disagree with the indexes in {len(wrong)} categories, e.g. "
                f"{c!r}: manifest {recorded.get(c)}, index {live.get(c)}"
            )
    if "n_products" in manifest and manifest["n_products"] != len(products):
        problems.append(
            f"manifest says {manifest['n_products']} products, the table has {len(products)}"
        )
    if vectors.size and not np.isfinite(vectors).all():
        bad = int((~np.isfinite(vectors).all(axis=1)).sum()) if vectors.ndim == 2 else -1
        problems.append(f"{bad} embedding(s) hold NaN or infinite values")
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
    prune(out)  # temporaries of writers that were killed
    tmp = temp_folder(out)
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
    folder = resolve_version(path)  # every file from one version, even if a write swaps it
    manifest_file = folder / MANIFEST
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
        products = pd.read_parquet(folder / "products.parquet")
        vectors = np.load(folder / "embeddings.npy")
        indexes = {
            c: faiss.read_index(str(folder / "indexes" / f))
            for c, f in manifest.get("index_files", {}).items()
        }
    except (OSError, ValueError, RuntimeError) as exc:
        raise CatalogError(f"catalog {path}: files are missing or corrupt ({exc})") from None
    problems = consistency_problems(products, vectors, manifest, indexes)
    if problems:
        raise CatalogError(f"catalog {path}: {'; '.join(problems)}; rebuild the catalog")
    return products, vectors.astype(np.float32, copy=False), manifest, indexes
