"""The product table a catalog is built from: validated ids, resolved images, a category each.

Image paths are relative to the table's own folder unless they are absolute or an
``images_root`` is given. Every problem is a ProductTableError naming the table.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

from shopthelook.core.errors import ProductTableError
from shopthelook.core.tables import read_table, resolve_images

log = logging.getLogger(__name__)

#: longest product id and category name (the events store keeps no more)
MAX_PRODUCT_ID_LENGTH = 200
MAX_CATEGORY_LENGTH = 100
#: what an id may not hold: it is one segment of the product page's URL
_BAD_ID = re.compile(r"[/\\\x00-\x1f\x7f]")


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
    table["product_id"] = _product_ids(table["product_id"], label)
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
    long = table["category"].astype(str).str.len() > MAX_CATEGORY_LENGTH
    if long.any():
        raise ProductTableError(
            f"{label}: {int(long.sum())} row(s) have a category longer than "
            f"{MAX_CATEGORY_LENGTH} characters, e.g. {str(table['category'][long].iloc[0])[:40]!r}"
        )
    if "name" not in table.columns:
        table["name"] = None
    return table.reset_index(drop=True)


def _product_ids(ids: pd.Series, label: str) -> pd.Series:
    """The ids as stripped strings; ProductTableError for empty ones or ones no URL can hold."""
    missing = ids.isna()
    text = ids.astype(str).str.strip()
    empty = missing | (text == "")
    if empty.any():
        rows = [int(i) + 2 for i in empty[empty].index[:5]]  # line numbers of a CSV with header
        raise ProductTableError(
            f"{label}: {int(empty.sum())} row(s) have an empty product_id (e.g. table rows "
            f"{rows}); give every product an id"
        )
    bad = text.str.contains(_BAD_ID) | text.isin([".", ".."])
    if bad.any():
        raise ProductTableError(
            f"{label}: {int(bad.sum())} product_id(s) contain '/', '\\' or control "
            f"characters, or are '.' or '..' (e.g. {text[bad].iloc[0][:40]!r}); an id is part "
            "of the product page's address: replace those characters"
        )
    long = text.str.len() > MAX_PRODUCT_ID_LENGTH
    if long.any():
        raise ProductTableError(
            f"{label}: {int(long.sum())} product_id(s) are longer than "
            f"{MAX_PRODUCT_ID_LENGTH} characters"
        )
    return text


def unknown_categories(products: pd.DataFrame, taxonomy) -> dict[str, int]:
    """Products per category the taxonomy does not know (no detector label searches them);
    each is logged as a warning."""
    known = set(taxonomy.categories)
    counts = products["category"].astype(str).value_counts()
    unknown = {str(c): int(n) for c, n in counts.items() if c not in known}
    for category, n in sorted(unknown.items()):
        log.warning(
            "%d product(s) in category %r, which the taxonomy does not know: no detected "
            "object searches it (add it to the taxonomy, or map the table's column to a "
            "known category)",
            n,
            category,
        )
    return unknown
