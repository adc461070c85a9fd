"""Per-product engagement statistics as of a moment: popularity, smoothed rates, recency, price.

Rates are smoothed towards the catalog-wide rate (a Beta prior of ``PRIOR_STRENGTH``
impressions) so that a product clicked once out of one impression does not look perfect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ranker.events import events_before
from ranker.profile import EVENT_WEIGHTS

PRIOR_STRENGTH = 20.0
STAT_COLUMNS = ("popularity", "trend", "click_rate", "purchase_rate", "recency_days", "price")
#: the "trend" popularity counts only this recent past
TREND_DAYS = 28


@dataclass
class EngagementStats:
    #: indexed by product_id, columns STAT_COLUMNS
    table: pd.DataFrame
    as_of: pd.Timestamp | None

    @classmethod
    def build(
        cls, events: pd.DataFrame, as_of=None, catalog_prices: pd.Series | None = None
    ) -> EngagementStats:
        """Statistics from the events strictly before ``as_of`` (all events when None)."""
        events, as_of = events_before(events, as_of)
        if events.empty:
            table = pd.DataFrame(columns=list(STAT_COLUMNS), dtype=float)
        else:
            counts = pd.crosstab(events["product_id"], events["event_type"])
            for kind in EVENT_WEIGHTS:
                if kind not in counts:
                    counts[kind] = 0
            engaged = counts["click"] + counts["save"] + counts["purchase"]
            # without impression logs (e.g. imported purchases) every engagement was "shown"
            shown = np.maximum(counts["impression"], engaged).astype(float)
            weighted = sum(counts[k] * w for k, w in EVENT_WEIGHTS.items())
            base_click = (counts["click"].sum() + 1.0) / (shown.sum() + 2.0)
            base_buy = (counts["purchase"].sum() + 1.0) / (shown.sum() + 2.0)
            last = events.groupby("product_id")["ts"].max()
            recent = events[events["ts"] >= as_of - pd.Timedelta(days=TREND_DAYS)]
            recent_weight = (
                recent["event_type"].map(EVENT_WEIGHTS).groupby(recent["product_id"]).sum()
            )
            table = pd.DataFrame(
                {
                    "popularity": np.log1p(weighted.astype(float)),
                    "trend": np.log1p(
                        recent_weight.reindex(counts.index).fillna(0.0).astype(float)
                    ),
                    "click_rate": (counts["click"] + PRIOR_STRENGTH * base_click)
                    / (shown + PRIOR_STRENGTH),
                    "purchase_rate": (counts["purchase"] + PRIOR_STRENGTH * base_buy)
                    / (shown + PRIOR_STRENGTH),
                    "recency_days": (as_of - last).dt.total_seconds() / 86400.0,
                }
            )
            table["price"] = events.dropna(subset=["price"]).groupby("product_id")["price"].median()
        table.index = table.index.astype(str)
        if catalog_prices is not None:
            listed = pd.to_numeric(catalog_prices, errors="coerce").dropna()
            listed.index = listed.index.astype(str)
            table = table.reindex(table.index.union(listed.index))
            table["price"] = listed.reindex(table.index).fillna(table["price"])
        return cls(table.astype(float), as_of)

    def lookup(self, product_ids) -> np.ndarray:
        """[n, len(STAT_COLUMNS)]; NaN for products never engaged with (popularity, trend 0)."""
        table = self.table.reindex([str(p) for p in product_ids])[list(STAT_COLUMNS)]
        out = np.array(table.to_numpy(dtype=np.float32), copy=True)
        out[:, :2] = np.nan_to_num(out[:, :2], nan=0.0)
        return out
