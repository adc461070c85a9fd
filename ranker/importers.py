"""Importers that turn real logs into engagement events (idempotent: importing twice adds nothing)."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ranker.events import EventStore
from shopthelook.core.errors import DatasetError

log = logging.getLogger(__name__)

HM_COLUMNS = ("t_dat", "customer_id", "article_id", "price")


def import_hm_transactions(
    store: EventStore,
    transactions: str | Path,
    *,
    articles: str | Path | None = None,
    taxonomy=None,
    chunk: int = 20_000,
) -> tuple[int, int]:
    """Load H&M ``transactions.csv`` as purchase events; returns (stored, skipped).

    Each line becomes one purchase (two identical lines are two units bought), keyed by its
    line number so a second import stores nothing new. With ``articles`` the rows naming an
    unknown article are skipped and each event gets the article's catalog category.
    """
    path = Path(transactions)
    if not path.exists():
        raise DatasetError(f"H&M transactions {path}: no such file")
    categories: dict[str, str] = {}
    known: set[str] | None = None
    if articles is not None:
        table = pd.read_csv(articles, dtype={"article_id": str})
        known = set(table["article_id"])
        if taxonomy is not None:
            categories = dict(
                zip(table["article_id"], taxonomy.categorize_table(table), strict=True)
            )
    stored = skipped = 0
    try:
        reader = pd.read_csv(path, dtype={"article_id": str, "customer_id": str}, chunksize=chunk)
        for part in reader:
            missing = [c for c in HM_COLUMNS if c not in part.columns]
            if missing:
                raise DatasetError(f"H&M transactions {path}: missing columns {missing}")
            if known is not None:
                unknown = ~part["article_id"].isin(known)
                skipped += int(unknown.sum())
                part = part[~unknown]
            events = (
                {
                    "event_type": "purchase",
                    "user_id": row.customer_id,
                    "product_id": row.article_id,
                    "ts": f"{row.t_dat}T12:00:00+00:00",
                    "price": row.price,
                    "category": categories.get(row.article_id),
                    "request_id": f"hm-transactions:{row.Index}",
                }
                for row in part.itertuples()
            )
            stored += store.log_many(events)
            skipped += store.last_skipped
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetError(f"H&M transactions {path}: cannot be read ({exc})") from None
    log.info("H&M import: %d purchases stored, %d skipped", stored, skipped)
    return stored, skipped
