"""Reading tables of products, scenes and pairs (CSV or Parquet) and resolving their images.

Image paths in a table are relative to the table's own folder unless they are absolute or an
``images_root`` is given. Every problem is a ProductTableError / DatasetError naming the file.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pandas as pd

from shopthelook.core.errors import DatasetError

log = logging.getLogger(__name__)

SCENE_ID_ALIASES = ("scene_id", "room_id", "image_id")


def read_table(
    source: str | Path,
    *,
    error=DatasetError,
    what: str = "table",
    encoding: str | None = None,
    sep: str | None = None,
) -> pd.DataFrame:
    """A CSV (``encoding``, default UTF-8 with or without BOM; separator ``sep``, default ',')
    or Parquet table, every CSV value a string. A table whose every row has another number of
    fields than its header is refused: its columns would be read shifted."""
    path = Path(source)
    if not path.exists():
        raise error(f"{what} {path}: no such file")
    if path.is_dir():
        raise error(f"{what} {path}: is a folder; give a .csv or .parquet file")
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path)
        except (ValueError, OSError) as exc:
            raise error(f"{what} {path}: cannot be read as Parquet ({exc})") from None
    encoding, sep = encoding or "utf-8-sig", sep or ","
    try:
        _check_fields(path, encoding=encoding, sep=sep, error=error, what=what)
        table = pd.read_csv(
            path, dtype=str, keep_default_na=True, encoding=encoding, sep=sep, index_col=False
        )
    except UnicodeError as exc:
        raise error(
            f"{what} {path}: not {encoding} text ({exc.reason} at byte {getattr(exc, 'start', '?')}); "
            "pass its encoding, e.g. --encoding latin-1 or --encoding utf-16"
        ) from None
    except LookupError:
        raise error(f"{what} {path}: unknown encoding {encoding!r}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error, ValueError, OSError) as exc:
        raise error(
            f"{what} {path}: cannot be read as CSV/Parquet ({str(exc).strip()[:200]}); "
            f"check the separator (now {sep!r}, see --sep)"
        ) from None
    if len(table.columns) == 1:
        other = next((c for c in ";\t|" if c != sep and c in str(table.columns[0])), None)
        if other is not None:
            raise error(
                f"{what} {path}: one column {str(table.columns[0])[:60]!r}; the table seems "
                f"separated by {other!r}: pass --sep {other!r}"
            )
    return table


def _check_fields(path: Path, *, encoding: str, sep: str, error, what: str) -> None:
    """Refuse a CSV whose every data row has another field count than its header."""
    with path.open(newline="", encoding=encoding) as fh:
        rows = csv.reader(fh, delimiter=sep)
        header = next(rows, None)
        if header is None:
            return
        total = ragged = 0
        for row in rows:
            if not row:
                continue
            total += 1
            ragged += len(row) != len(header)
    if total and ragged == total:
        raise error(
            f"{what} {path}: every one of its {total} rows has another number of fields than "
            f"its header ({len(header)}); check the separator (now {sep!r}, see --sep) and "
            "the quoting"
        )
    if ragged:
        log.warning("%s %s: %d of %d rows have a wrong number of fields", what, path, ragged, total)


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
