"""Incremental catalog maintenance: add, replace and remove products, compact the indexes.

An add never retrains an index, so other products' results stay put; indexes that hold too
many tombstones or have outgrown their training are rebuilt by ``compact``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from catalog import ann
from catalog.embedding import embed_products
from catalog.files import fingerprint_mismatches, table_hash
from catalog.product_table import prepare_product_table, unknown_categories
from shopthelook.core.errors import CatalogError


def index_options(manifest: dict[str, Any]) -> ann.IndexOptions:
    """The index options a catalog was built with (stored in its manifest)."""
    return ann.IndexOptions(
        exact_max=int(manifest.get("exact_index_max", 20_000)),
        kind=str(manifest.get("index_kind", "auto")),
    )


class IncrementalUpdates:
    """The add/remove/compact half of :class:`catalog.Catalog` (which provides the state)."""

    products: pd.DataFrame
    vectors: np.ndarray
    manifest: dict[str, Any]
    indexes: dict
    specs: dict
    path: Path | None

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
        from shopthelook.core.config import Settings
        from shopthelook.core.taxonomy import load_taxonomy

        if embedder.name != self.backbone or embedder.head_id != self.head:
            raise CatalogError(
                f"catalog {self.path} uses backbone {self.backbone!r} (head {self.head}); "
                f"cannot add products embedded with {embedder.name!r} (head {embedder.head_id})"
            )
        changed = fingerprint_mismatches(self.manifest, embedder.weights_fingerprints())
        if changed:
            raise CatalogError(
                f"catalog {self.path} was embedded with other weights for {', '.join(changed)}; "
                "products embedded now would not be comparable: rebuild the catalog instead"
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
        if failures and not len(new):
            raise CatalogError(
                f"no product photo could be read: {len(failures)} unreadable image(s) "
                f"(e.g. {failures[0]['error']}); check --images-root. The catalog {self.path} "
                "is unchanged"
            )
        if replace and len(existing):
            self._drop(set(new["product_id"]))
        start = int(self.manifest.get("next_row_id", len(self.products)))
        new["row_id"] = np.arange(start, start + len(new), dtype=np.int64)
        self.products = pd.concat([self.products, new], ignore_index=True)
        self.vectors = np.concatenate([self.vectors, vectors]) if len(new) else self.vectors
        self._reindex_rows()
        options = index_options(self.manifest)
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
            "unknown_categories": unknown_categories(
                new, taxonomy or load_taxonomy(settings.taxonomy)
            ),
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
        options = index_options(self.manifest)
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
