"""Reading and validating tables of products, scenes and pairs (CSV or Parquet).

Image paths in a table are relative to the table's own folder unless they are absolute or an
``images_root`` is given. Every problem is a ProductTableError / DatasetError naming the file.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from shopthelook.errors import DatasetError, ProductTableError

SCENE_ID_ALIASES = ("scene_id", "room_id", "image_id")


def read_table(source: str | Path, *, error=DatasetError, what: str = "table") -> pd.DataFrame:
    path = Path(source)
    if not path.exists():
        raise error(f"{what} {path}: no such file")
    if path.is_dir():
        raise error(f"{what} {path}: is a folder; give a .csv or .parquet file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype=str, keep_default_na=True)
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
        ValueError,
        OSError,
    ) as exc:
        raise error(f"{what} {path}: cannot be read as CSV/Parquet ({exc})") from None


def resolve_images(table: pd.DataFrame, base: Path | None) -> pd.Series:
    def resolve(p: object) -> str:
        if not isinstance(p, str) or not p:
            return ""
        path = Path(p)
        if not path.is_absolute() and base is not None:
            path = base / path
        return str(path)

    return table["image"].map(resolve)


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


def normalise_scene_table(table: pd.DataFrame, *, label: str, base: Path | None) -> pd.DataFrame:
    id_col = next((c for c in SCENE_ID_ALIASES if c in table.columns), None)
    if id_col is None or "image" not in table.columns:
        raise DatasetError(
            f"scenes {label}: needs a scene_id (or room_id) column and an image column; "
            f"it has {list(table.columns)[:12]}"
        )
    out = table.rename(columns={id_col: "scene_id"}).copy()
    out["scene_id"] = out["scene_id"].astype(str)
    out["image"] = resolve_images(out, base)
    return out.reset_index(drop=True)


def normalise_pairs_table(table: pd.DataFrame, *, label: str) -> pd.DataFrame:
    id_col = next((c for c in SCENE_ID_ALIASES if c in table.columns), None)
    if id_col is None or "product_id" not in table.columns:
        raise DatasetError(
            f"pairs {label}: needs a scene_id (or room_id) column and a product_id column; "
            f"it has {list(table.columns)[:12]}"
        )
    out = table.rename(columns={id_col: "scene_id"})[["scene_id", "product_id"]].copy()
    return out.astype(str).drop_duplicates().reset_index(drop=True)
