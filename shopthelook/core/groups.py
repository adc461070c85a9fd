"""Style groups: tables of (image, group) read from the datasets, filtered and split by group.

A *group* is a set of images that share a style source: the photos one person contributed
(clothing ``sender_id``, the "same account" of seed 001), the products shown in one IKEA
room, the articles one H&M customer bought, the photos with one furniture-style label, or
any CSV with ``image`` and ``group`` columns.

How groups are compared (lookalikes, HitRate@K) is in ``shopthelook.lookalikes``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from shopthelook.core.errors import DatasetError

logger = logging.getLogger(__name__)

GROUP_SOURCES = ("clothing", "ikea-rooms", "hm-customers", "furniture-styles")


# -- group tables ---------------------------------------------------------------------------


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DatasetError(
            f"{path}: the file is empty; it needs 'image' and 'group' columns"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable CSV ({exc})") from None


def _need_columns(df: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DatasetError(f"{where}: missing column(s) {missing}; found {list(df.columns)}")


def _data_folder(data_root: str | Path | None, name: str) -> Path:
    if data_root is None:
        from shopthelook.core.config import load_settings

        data_root = load_settings().data_root
    if data_root is None:
        raise DatasetError(
            f"no data root configured for the {name!r} groups: set data_root "
            "(SHOPTHELOOK_DATA_ROOT) to the folder that holds ikea/, hm/, clothing/"
        )
    folder = Path(data_root) / name
    if not folder.exists():
        raise DatasetError(f"{folder}: dataset folder not found under data_root {data_root}")
    return folder


def load_groups(source: str | Path, data_root: str | Path | None = None) -> pd.DataFrame:
    """A group table: columns ``image`` (absolute path), ``group`` (str), ``item_id`` (str).

    ``source`` is one of :data:`GROUP_SOURCES` or the path of a CSV with ``image`` and
    ``group`` columns (image paths relative to the CSV's folder). Rows without a group are
    dropped; an item appears at most once per group.
    """
    name = str(source)
    if name == "clothing":
        folder = _data_folder(data_root, "clothing")
        df = _read_csv(folder / "images.csv")
        _need_columns(df, ["image", "sender_id"], str(folder / "images.csv"))
        table = pd.DataFrame(
            {
                "image": df["image"],
                "group": df["sender_id"],
                "item_id": df.get("image_id", df["image"]),
            }
        )
    elif name == "ikea-rooms":
        folder = _data_folder(data_root, "ikea")
        products = _read_csv(folder / "products.csv")
        pairs = _read_csv(folder / "room_products.csv")
        _need_columns(products, ["product_id", "image"], str(folder / "products.csv"))
        _need_columns(pairs, ["room_id", "product_id"], str(folder / "room_products.csv"))
        merged = pairs.merge(products[["product_id", "image"]], on="product_id", how="inner")
        table = pd.DataFrame(
            {"image": merged["image"], "group": merged["room_id"], "item_id": merged["product_id"]}
        )
    elif name == "hm-customers":
        folder = _data_folder(data_root, "hm")
        articles = _read_csv(folder / "articles.csv")
        tx = _read_csv(folder / "transactions.csv")
        _need_columns(articles, ["article_id", "image"], str(folder / "articles.csv"))
        _need_columns(tx, ["customer_id", "article_id"], str(folder / "transactions.csv"))
        merged = tx.merge(articles[["article_id", "image"]], on="article_id", how="inner")
        table = pd.DataFrame(
            {
                "image": merged["image"],
                "group": merged["customer_id"],
                "item_id": merged["article_id"],
            }
        )
    elif name == "furniture-styles":
        folder = _data_folder(data_root, "furniture-styles")
        df = _read_csv(folder / "images.csv")
        _need_columns(df, ["image", "style"], str(folder / "images.csv"))
        table = pd.DataFrame({"image": df["image"], "group": df["style"], "item_id": df["image"]})
    else:
        path = Path(name)
        if path.suffix.lower() != ".csv" and not path.exists():
            raise DatasetError(
                f"unknown group source {name!r}: use one of {list(GROUP_SOURCES)} or a CSV file "
                "with 'image' and 'group' columns"
            )
        folder = path.resolve().parent
        df = _read_csv(path)
        _need_columns(df, ["image", "group"], str(path))
        item = df["item_id"] if "item_id" in df.columns else df["image"]
        table = pd.DataFrame({"image": df["image"], "group": df["group"], "item_id": item})
    table = table.astype(str)
    table = table[(table["group"].str.strip() != "") & (table["image"].str.strip() != "")]
    table["image"] = [
        str((folder / p).resolve()) if not Path(p).is_absolute() else p for p in table["image"]
    ]
    table = table.drop_duplicates(["group", "item_id"]).reset_index(drop=True)
    if table.empty:
        raise DatasetError(f"group source {name!r}: no rows with both an image and a group")
    return table


def drop_small_groups(table: pd.DataFrame, min_members: int = 2) -> pd.DataFrame:
    """Groups need two members to give a positive pair (and two halves to evaluate)."""
    sizes = table["group"].map(table["group"].value_counts())
    kept = table[sizes >= min_members].reset_index(drop=True)
    n_dropped = table["group"].nunique() - kept["group"].nunique()
    if n_dropped:
        logger.info("dropped %d group(s) with fewer than %d members", n_dropped, min_members)
    if kept["group"].nunique() < 2:
        raise DatasetError(
            f"fewer than two groups have {min_members}+ members ({table['group'].nunique()} groups, "
            f"{len(table)} images): a group needs at least {min_members} images"
        )
    return kept


def split_groups(
    groups: Sequence[str], *, val_fraction: float, test_fraction: float, seed: int
) -> tuple[list[str], list[str], list[str]]:
    """Disjoint train / validation / test group ids, the same for the same ids and seed."""
    unique = sorted(set(map(str, groups)))
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise DatasetError(f"bad split fractions val={val_fraction} test={test_fraction}")
    order = np.random.default_rng(seed).permutation(len(unique))
    n_test = int(round(len(unique) * test_fraction))
    n_val = int(round(len(unique) * val_fraction))
    test = [unique[i] for i in order[:n_test]]
    val = [unique[i] for i in order[n_test : n_test + n_val]]
    train = [unique[i] for i in order[n_test + n_val :]]
    return train, val, test
