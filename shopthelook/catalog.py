"""The product catalog: the product table, its embeddings and one FAISS index per category.

On disk a catalog is a folder::

    manifest.json       format version, backbone, head, dimension, counts, index kinds, hash
    products.parquet    the product table (product_id, image, category, name, ...) + row_id
    embeddings.npy      float32 [n, d], row i belongs to products row i
    indexes/<n>.faiss   one index per category, ids = row_id

Every write goes to a sibling temporary folder that replaces the old one in a rename, so a
half-written catalog is never visible and a failed build leaves the old catalog intact.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd

from shopthelook import ann
from shopthelook.catalog_files import (
    FORMAT_VERSION,
    MANIFEST,
    consistency_problems,
    index_file_name,
    swap_in,
    table_hash,
    weights_fingerprint,
)
from shopthelook.errors import CatalogError
from shopthelook.product_embedding import embed_products
from shopthelook.product_table import prepare_product_table

__all__ = ["FORMAT_VERSION", "MANIFEST", "Catalog", "embed_products", "weights_fingerprint"]

log = logging.getLogger(__name__)


def _index_options(manifest: dict[str, Any]) -> ann.IndexOptions:
    return ann.IndexOptions(
        exact_max=int(manifest.get("exact_index_max", 20_000)),
        kind=str(manifest.get("index_kind", "auto")),
    )


class Catalog:
    def __init__(
        self,
        products: pd.DataFrame,
        embeddings: np.ndarray,
        manifest: dict[str, Any],
        indexes: dict[str, faiss.Index],
        path: Path | None = None,
    ) -> None:
        self.products = products.reset_index(drop=True)
        self.vectors = embeddings
        self.manifest = manifest
        self.indexes = indexes
        self.path = path
        params = manifest.get("index_params", {})
        # catalogs saved before index_params: the index file itself says what it is
        self.specs = {
            c: ann.IndexSpec.from_dict(params[c]) if c in params else ann.spec_of(index)
            for c, index in indexes.items()
        }
        for category, index in indexes.items():
            ann.apply_search_params(index, self.specs[category])
        self._reindex_rows()

    def _reindex_rows(self) -> None:
        self._row_of_id = dict(zip(self.products["row_id"].to_numpy(), range(len(self.products))))
        self._row_of_product = dict(zip(self.products["product_id"], range(len(self.products))))

    # -- properties -------------------------------------------------------------------
    @property
    def backbone(self) -> str:
        return self.manifest["backbone"]

    @property
    def head(self) -> str:
        return self.manifest.get("head", "identity")

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    def __len__(self) -> int:
        return len(self.products)

    def categories(self) -> list[str]:
        return sorted(self.indexes)

    def has_product(self, product_id: str) -> bool:
        return str(product_id) in self._row_of_product

    def product(self, product_id: str) -> dict[str, Any]:
        row = self._row_of_product.get(str(product_id))
        if row is None:
            raise CatalogError(f"product {product_id!r} is not in the catalog")
        record = self.products.iloc[row].to_dict()
        return {k: (None if isinstance(v, float) and v != v else v) for k, v in record.items()}

    def embeddings(self, product_ids: Sequence[str]) -> np.ndarray:
        rows = []
        for pid in product_ids:
            row = self._row_of_product.get(str(pid))
            if row is None:
                raise CatalogError(f"product {pid!r} is not in the catalog")
            rows.append(row)
        return self.vectors[rows] if rows else np.zeros((0, self.dim), np.float32)

    # -- search -----------------------------------------------------------------------
    def search(self, queries: np.ndarray, category: str, k: int) -> list[list[tuple[str, float]]]:
        """Top-k (product_id, score) per query row within one category."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.dim:
            raise CatalogError(
                f"query dimension {queries.shape[1]} does not match the catalog's {self.dim}"
            )
        index = self.indexes.get(category)
        if index is None or index.ntotal == 0 or k <= 0:
            return [[] for _ in range(len(queries))]
        scores, ids = ann.search(index, self.specs[category], queries, k, rescore=self._rescore)
        pids = self.products["product_id"].to_numpy()
        out = []
        for srow, irow in zip(scores, ids):
            out.append([(pids[self._row_of_id[i]], float(s)) for s, i in zip(srow, irow) if i >= 0])
        return out

    def _rescore(self, row_ids: np.ndarray) -> np.ndarray:
        """Stored float32 vectors by row id: approximate candidates are re-scored exactly."""
        return self.vectors[[self._row_of_id[int(i)] for i in row_ids]]

    def search_categories(
        self, query: np.ndarray, categories: Sequence[str] | None, k: int
    ) -> list[tuple[str, float]]:
        """Top-k over several categories (all when None), merged by score."""
        cats = list(categories) if categories else self.categories()
        merged: list[tuple[str, float]] = []
        for cat in cats:
            merged.extend(self.search(query, cat, k)[0])
        merged.sort(key=lambda t: -t[1])
        return merged[:k]

    # -- build / load / save ----------------------------------------------------------
    @classmethod
    def build(
        cls,
        table: pd.DataFrame | str | Path,
        *,
        embedder,
        taxonomy,
        out: str | Path,
        images_root: str | Path | None = None,
        settings=None,
        show_progress: bool = False,
        source: str | None = None,
        embed=None,
    ) -> Catalog:
        from shopthelook.config import Settings

        settings = settings or Settings()
        started = time.perf_counter()
        products = prepare_product_table(
            table, taxonomy=taxonomy, images_root=images_root, label=source
        )
        vectors, ok, failures = (embed or embed_products)(
            products["image"].tolist(), embedder, settings=settings, show_progress=show_progress
        )
        products = products.loc[ok].reset_index(drop=True)
        products["row_id"] = np.arange(len(products), dtype=np.int64)
        manifest = {
            "format_version": FORMAT_VERSION,
            "backbone": embedder.name,
            "head": embedder.head_id,
            "head_path": settings.head or "",
            "dim": int(embedder.dim),
            "weights_sha256": weights_fingerprint(embedder.name, settings.detector_weights),
            "source": source or (str(table) if isinstance(table, (str, Path)) else "<table>"),
            "source_hash": table_hash(products),
            "next_row_id": int(len(products)),
            "exact_index_max": int(settings.exact_index_max),
            "index_kind": settings.index_kind,
            "failures": failures,
            "build_seconds": round(time.perf_counter() - started, 2),
        }
        catalog = cls._assemble(products, vectors, manifest)
        catalog.save(out)
        log.info("built catalog %s: %d products, %d failures", out, len(products), len(failures))
        return catalog

    @classmethod
    def _assemble(
        cls, products: pd.DataFrame, vectors: np.ndarray, manifest: dict[str, Any]
    ) -> Catalog:
        indexes: dict[str, faiss.Index] = {}
        specs: dict[str, ann.IndexSpec] = {}
        options = _index_options(manifest)
        for category, rows in products.groupby("category", sort=True).indices.items():
            indexes[str(category)], specs[str(category)] = ann.build_index(
                vectors[rows], products["row_id"].to_numpy()[rows], options=options
            )
        manifest = dict(manifest, index_params={c: s.to_dict() for c, s in specs.items()})
        catalog = cls(products, vectors, manifest, indexes)
        catalog._refresh_manifest()
        return catalog

    def _refresh_manifest(self) -> None:
        self.manifest["counts"] = {c: ann.live_count(i) for c, i in self.indexes.items()}
        self.manifest["index"] = {c: s.kind for c, s in self.specs.items()}
        self.manifest["index_params"] = {c: s.to_dict() for c, s in self.specs.items()}
        self.manifest["n_products"] = int(len(self.products))

    def save(self, out: str | Path) -> None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{time.monotonic_ns()}"
        try:
            (tmp / "indexes").mkdir(parents=True)
            self.products.to_parquet(tmp / "products.parquet", index=False)
            np.save(tmp / "embeddings.npy", self.vectors)
            used: set[str] = set()
            files = {}
            for category, index in self.indexes.items():
                fname = index_file_name(category, used)
                faiss.write_index(index, str(tmp / "indexes" / fname))
                files[category] = fname
            manifest = dict(
                self.manifest,
                index_files=files,
                created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            )
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
            swap_in(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.manifest = manifest
        self.path = out

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        expected_backbone: str | None = None,
        expected_head: str | None = None,
    ) -> Catalog:
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
        return cls(products, vectors.astype(np.float32, copy=False), manifest, indexes, path)

    # -- incremental updates ----------------------------------------------------------
    def add(
        self,
        table: pd.DataFrame | str | Path,
        *,
        embedder,
        taxonomy=None,
        images_root: str | Path | None = None,
        settings=None,
        show_progress: bool = False,
        replace: bool = False,
    ) -> dict[str, Any]:
        """Embed and add products; existing ids are refused unless ``replace``. Saves in place."""
        from shopthelook.config import Settings
        from shopthelook.taxonomy import load_taxonomy

        if embedder.name != self.backbone or embedder.head_id != self.head:
            raise CatalogError(
                f"catalog {self.path} uses backbone {self.backbone!r} (head {self.head}); "
                f"cannot add products embedded with {embedder.name!r} (head {embedder.head_id})"
            )
        settings = settings or Settings()
        new = prepare_product_table(
            table, taxonomy=taxonomy or load_taxonomy(settings.taxonomy), images_root=images_root
        )
        existing = new["product_id"][new["product_id"].isin(self._row_of_product.keys())]
        if len(existing) and not replace:
            raise CatalogError(
                f"{len(existing)} product id(s) already in the catalog (e.g. {existing.iloc[0]!r}); "
                "use --replace to update them"
            )
        vectors, ok, failures = embed_products(
            new["image"].tolist(), embedder, settings=settings, show_progress=show_progress
        )
        new = new.loc[ok].reset_index(drop=True)
        if replace and len(existing):
            self._drop(set(new["product_id"]))
        start = int(self.manifest.get("next_row_id", len(self.products)))
        new["row_id"] = np.arange(start, start + len(new), dtype=np.int64)
        self.products = pd.concat([self.products, new], ignore_index=True)
        self.vectors = np.concatenate([self.vectors, vectors]) if len(new) else self.vectors
        self._reindex_rows()
        options = _index_options(self.manifest)
        for category, rows in new.groupby("category", sort=True).indices.items():
            category, ids = str(category), new["row_id"].to_numpy()[rows]
            if category in self.indexes:  # no retraining: other products' results stay put
                ann.add_vectors(self.indexes[category], self.specs[category], vectors[rows], ids)
            else:
                self.indexes[category], self.specs[category] = ann.build_index(
                    vectors[rows], ids, options=options
                )
        self.manifest.update(next_row_id=start + len(new), source_hash=table_hash(self.products))
        self.compact(save=False)
        self.save(self.path)
        return {
            "added": int(len(new)),
            "replaced": int(len(existing)) if replace else 0,
            "failures": failures,
        }

    def remove(self, product_ids: Sequence[str]) -> int:
        """Remove products by id; unknown ids are an error naming them. Saves in place."""
        ids = {str(p) for p in product_ids}
        unknown = sorted(ids - self._row_of_product.keys())
        if unknown:
            raise CatalogError(f"{len(unknown)} product id(s) not in the catalog: {unknown[:5]}")
        self._drop(ids)
        self.manifest["source_hash"] = table_hash(self.products)
        self.save(self.path)
        return len(ids)

    def _drop(self, ids: set[str]) -> None:
        gone = self.products["product_id"].isin(ids).to_numpy()
        dropped = self.products.loc[gone]
        for category, rows in dropped.groupby("category", sort=True).indices.items():
            ann.remove_ids(
                self.indexes[str(category)],
                self.specs[str(category)],
                dropped["row_id"].to_numpy()[rows],
            )
        self.products = self.products.loc[~gone].reset_index(drop=True)
        self.vectors = self.vectors[~gone]
        self._reindex_rows()
        for category in set(dropped["category"].astype(str)) - set(self.products["category"]):
            del self.indexes[category], self.specs[category]  # the category is empty now
        self.compact(save=False)

    def compact(self, *, force: bool = False, save: bool = True) -> dict[str, str]:
        """Rebuild the indexes holding tombstones or outgrown by their size; returns why each was."""
        options = _index_options(self.manifest)
        categories = self.products["category"].astype(str).to_numpy()
        rebuilt = {}
        for category, index in sorted(self.indexes.items()):
            spec = self.specs[category]
            reason = "asked for" if force else ann.needs_compaction(index, spec, options)
            if reason:
                rows = np.flatnonzero(categories == category)
                self.indexes[category], self.specs[category] = ann.build_index(
                    self.vectors[rows], self.products["row_id"].to_numpy()[rows], options=options
                )
                rebuilt[category] = reason
        self._refresh_manifest()
        if save and rebuilt and self.path is not None:
            self.save(self.path)
        return rebuilt
