"""The product catalog: the product table, its embeddings and one FAISS index per category.

``Catalog.build`` embeds a product table and saves the folder (``catalog.files``);
``Catalog.load`` opens one with every check; ``Catalog.search`` is the search stage's
interface: top-k (product_id, score) within one category. Adding and removing products
without a rebuild is in ``catalog.updates``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd

from catalog import ann
from catalog.embedding import embed_products
from catalog.files import (
    FORMAT_VERSION,
    existing_product_count,
    read_folder,
    table_hash,
    weights_fingerprint,
    write_folder,
)
from catalog.product_table import prepare_product_table, unknown_categories
from catalog.updates import IncrementalUpdates, index_options
from shopthelook.core.errors import CatalogError

log = logging.getLogger(__name__)


class Catalog(IncrementalUpdates):
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
        min_kept_share: float = 0.5,
    ) -> Catalog:
        """Embed and index a product table into the folder ``out`` (replaced atomically).

        Refused with a CatalogError, the catalog at ``out`` left as it was, when no product
        photo could be embedded or when the result would hold fewer than ``min_kept_share`` of
        the products of the catalog it replaces (0 turns that check off).
        """
        from shopthelook.core.config import Settings

        settings = settings or Settings()
        started = time.perf_counter()
        products = prepare_product_table(
            table, taxonomy=taxonomy, images_root=images_root, label=source
        )
        vectors, ok, failures = (embed or embed_products)(
            products["image"].tolist(), embedder, settings=settings, show_progress=show_progress
        )
        products = products.loc[ok].reset_index(drop=True)
        _check_kept(len(products), failures, out, min_kept_share)
        products["row_id"] = np.arange(len(products), dtype=np.int64)
        manifest = {
            "format_version": FORMAT_VERSION,
            "backbone": embedder.name,
            "head": embedder.head_id,
            "head_path": settings.head or "",
            "dim": int(embedder.dim),
            "weights_sha256": weights_fingerprint(embedder.name, settings.detector_weights),
            "weights_fingerprints": embedder.weights_fingerprints(),
            "source": source or (str(table) if isinstance(table, (str, Path)) else "<table>"),
            "source_hash": table_hash(products),
            "next_row_id": int(len(products)),
            "exact_index_max": int(settings.exact_index_max),
            "index_kind": settings.index_kind,
            "failures": failures,
            "unknown_categories": unknown_categories(products, taxonomy),
            "build_seconds": round(time.perf_counter() - started, 2),
        }
        catalog = cls._assemble(products, vectors, manifest)
        catalog.save(out, keep_detector=False)  # a new build is fitted anew (catalog.taught)
        log.info("built catalog %s: %d products, %d failures", out, len(products), len(failures))
        return catalog

    @classmethod
    def _assemble(
        cls, products: pd.DataFrame, vectors: np.ndarray, manifest: dict[str, Any]
    ) -> Catalog:
        indexes: dict[str, faiss.Index] = {}
        specs: dict[str, ann.IndexSpec] = {}
        options = index_options(manifest)
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

    def save(self, out: str | Path, *, keep_detector: bool = True) -> None:
        """Write the catalog to ``out``; a fitted detector of the catalog there is carried
        into the new version (``keep_detector``; the load checks say when it needs a refit)."""
        from catalog.swap import resolve_version

        previous = resolve_version(Path(out)) if keep_detector and Path(out).exists() else None
        self.manifest = write_folder(out, self.products, self.vectors, self.indexes, self.manifest)
        self.path = Path(out)
        if previous is not None and previous != resolve_version(Path(out)):
            from catalog.taught.files import carry_over

            carry_over(previous, out)

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        expected_backbone: str | None = None,
        expected_head: str | None = None,
    ) -> Catalog:
        products, vectors, manifest, indexes = read_folder(
            path, expected_backbone=expected_backbone, expected_head=expected_head
        )
        return cls(products, vectors, manifest, indexes, Path(path))


def _check_kept(n: int, failures: list[dict[str, str]], out: str | Path, share: float) -> None:
    """Refuse a build that would replace a catalog with nothing, or with much less."""
    if n == 0:
        example = f" (e.g. {failures[0]['error']})" if failures else ""
        raise CatalogError(
            f"no product photo could be read: {len(failures)} unreadable image(s){example}; "
            f"check --images-root and the image column. Nothing was written to {out}"
        )
    old = existing_product_count(out)
    if old and share > 0 and n < share * old:
        raise CatalogError(
            f"the new catalog would hold {n} products, {n / old:.0%} of the {old} in the catalog "
            f"at {out} it replaces ({len(failures)} unreadable image(s)); the old catalog is "
            f"left in place. If that is what you want, pass --min-kept-share 0 (now {share:g})"
        )
