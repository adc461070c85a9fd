"""The product table a catalog is built from: validated ids, resolved images, a category each.

Image paths are relative to the table's own folder unless they are absolute or an
``images_root`` is given. Every problem is a ProductTableError naming the table.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from shopthelook.core.errors import ProductTableError
from shopthelook.core.tables import read_table, resolve_images


def prepare_product_table(
    table: pd.DataFrame | str | Path,
    *,
    taxonomy,
    images_root: str | Path | None = None,
    label: str | None = None,
) -> pd.DataFrame:
    """A validated product table: product_id (str), image (absolute), category, name."""
    label = label or (str(table) if isinstance(table, (str, Path)) else "product table")
    if isinstance(table, (str, Path)):
        base = Path(images_root) if images_root else Path(table).resolve().parent
        table = read_table(table, error=ProductTableError, what="product table")
    else:
        base = Path(images_root) if images_root else None
        table = table.copy()
    missing = [c for c in ("product_id", "image") if c not in table.columns]
    if missing:
        raise ProductTableError(
            f"{label}: missing required column(s) {missing}; a product table needs product_id, "
            f"image and a category (or fields the taxonomy maps); it has {list(table.columns)[:12]}"
        )
    if table.empty:
        raise ProductTableError(f"{label}: has no rows")
    table["product_id"] = table["product_id"].astype(str).str.strip()
    if (table["product_id"] == "").any() or table["product_id"].isin(["nan", "None"]).any():
        raise ProductTableError(f"{label}: some rows have an empty product_id")
    dupes = table["product_id"][table["product_id"].duplicated()].unique()
    if len(dupes):
        raise ProductTableError(
            f"{label}: {len(dupes)} duplicate product_id(s), e.g. {list(dupes[:3])}; ids must be unique"
        )
    table["image"] = resolve_images(table, base)
    if "category" in table.columns or any(taxonomy._is_rule_column(c) for c in table.columns):
        table["category"] = taxonomy.categorize_table(table)
    else:
        raise ProductTableError(
            f"{label}: no category column and no column the taxonomy maps "
            f"(e.g. product_type, product_group_name, label); add a category column"
        )
    if "name" not in table.columns:
        table["name"] = None
    return table.reset_index(drop=True)
