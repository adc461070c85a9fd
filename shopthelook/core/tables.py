"""Reading tables of products, scenes and pairs (CSV or Parquet) and resolving their images.

Image paths in a table are relative to the table's own folder unless they are absolute or an
``images_root`` is given. Every problem is a ProductTableError / DatasetError naming the file.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from shopthelook.core.errors import DatasetError

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
