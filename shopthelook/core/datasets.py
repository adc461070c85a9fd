"""Adapters for the datasets under the data root (ikea, hm, clothing, furniture-styles) and
for generic CSV/Parquet tables or folders of images.

``load_products("ikea")`` and ``load_products("/path/products.csv")`` both return a table
with product_id, image (absolute path), name and the columns the taxonomy maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from shopthelook.core.errors import DatasetError, ProductTableError
from shopthelook.core.tables import (
    normalise_pairs_table,
    normalise_scene_table,
    read_table,
    resolve_images,
)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


@dataclass(frozen=True)
class DatasetFiles:
    name: str
    folder: Path
    products: str | None = None
    scenes: str | None = None
    pairs: str | None = None


DATASETS = {
    "ikea": DatasetFiles("ikea", Path("ikea"), "products.csv", "rooms.csv", "room_products.csv"),
    "hm": DatasetFiles("hm", Path("hm"), "articles.csv"),
    "clothing": DatasetFiles("clothing", Path("clothing"), "images.csv"),
    "furniture-styles": DatasetFiles("furniture-styles", Path("furniture-styles"), "images.csv"),
}


def _data_root(data_root: str | Path | None) -> Path:
    if data_root is None:
        from shopthelook.core.config import load_settings

        data_root = load_settings().data_root
    if data_root is None:
        raise DatasetError(
            "no data root: set data_root in shopthelook.toml or SHOPTHELOOK_DATA_ROOT "
            "(the folder holding ikea/, hm/, clothing/, furniture-styles/)"
        )
    return Path(data_root)


def dataset_file(name: str, kind: str, data_root: str | Path | None = None) -> Path:
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    spec = DATASETS[name]
    rel = getattr(spec, kind)
    if rel is None:
        raise DatasetError(f"dataset {name!r} has no {kind} table")
    path = _data_root(data_root) / spec.folder / rel
    if not path.exists():
        raise DatasetError(f"dataset {name!r}: {path} is missing (check data_root)")
    return path


def is_dataset_name(source: str | Path) -> bool:
    return isinstance(source, str) and source in DATASETS


def load_products(
    source: str | Path,
    *,
    data_root: str | Path | None = None,
    images_root: str | Path | None = None,
    encoding: str | None = None,
    sep: str | None = None,
) -> pd.DataFrame:
    """A raw product table (not yet categorised) with absolute image paths; ``encoding`` and
    ``sep`` are for a CSV file of one's own (datasets know theirs)."""
    if is_dataset_name(source):
        path = dataset_file(str(source), "products", data_root)
        table = read_table(path, what="products")
        table = _ADAPTERS[str(source)](table)
        table["image"] = resolve_images(table, Path(images_root) if images_root else path.parent)
        return table
    path = Path(source)
    table = read_table(
        path, error=ProductTableError, what="product table", encoding=encoding, sep=sep
    )
    if "image" not in table.columns:
        raise ProductTableError(
            f"product table {path}: missing required column 'image'; it has {list(table.columns)[:12]}"
        )
    table["image"] = resolve_images(
        table, Path(images_root) if images_root else path.resolve().parent
    )
    return table


def _ikea(t: pd.DataFrame) -> pd.DataFrame:
    t = t.copy()
    kind = t["product_type"].fillna("")
    name = t["name"].fillna("")
    t["name"] = (name + " " + kind).str.strip().replace("", None)
    t.loc[t["name"].isna(), "name"] = (
        t["source_folder"].str.replace("_", " ") + " " + t["product_id"]
    )
    return t


def _hm(t: pd.DataFrame) -> pd.DataFrame:
    t = t.rename(columns={"article_id": "product_id"}).copy()
    t["name"] = t["prod_name"]
    return t


def _clothing(t: pd.DataFrame) -> pd.DataFrame:
    t = t.rename(columns={"image_id": "product_id"}).copy()
    t["name"] = t["label"].fillna("garment")
    return t


def _furniture(t: pd.DataFrame) -> pd.DataFrame:
    t = t.copy()
    t["product_id"] = (
        t["image"].str.replace(r"^images/", "", regex=True).str.replace(r"\.\w+$", "", regex=True)
    )
    t["category"] = "furniture"
    t["name"] = t["style"].str.replace("_", " ") + " furniture"
    return t


_ADAPTERS = {"ikea": _ikea, "hm": _hm, "clothing": _clothing, "furniture-styles": _furniture}


def load_scenes(
    source: str | Path,
    *,
    data_root: str | Path | None = None,
    images_root: str | Path | None = None,
) -> pd.DataFrame:
    """Scenes as scene_id + image (absolute) (+ other columns, e.g. room_category).

    ``source``: a dataset name, a CSV/Parquet with scene_id (or room_id) and image, or a
    folder of images (scene_id = file name without suffix).
    """
    if is_dataset_name(source):
        path = dataset_file(str(source), "scenes", data_root)
    else:
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise DatasetError(f"scenes {path}: the folder holds no image files")
            return pd.DataFrame(
                {"scene_id": [p.stem for p in files], "image": [str(p.resolve()) for p in files]}
            )
    table = read_table(path, what="scenes")
    base = Path(images_root) if images_root else path.resolve().parent
    return normalise_scene_table(table, label=str(path), base=base)


def load_pairs(source: str | Path, *, data_root: str | Path | None = None) -> pd.DataFrame:
    """Ground-truth (scene_id, product_id) pairs."""
    path = (
        dataset_file(str(source), "pairs", data_root) if is_dataset_name(source) else Path(source)
    )
    return normalise_pairs_table(read_table(path, what="pairs"), label=str(path))
