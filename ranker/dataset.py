"""Query groups for training and evaluation, built from the real retrieval stage.

A query group is one (user, object) with its FAISS candidates and graded labels. From an
events log (the H&M setting, Visual Styles RecSys): for every day a user engaged with a
category after ``as_of``, the query is the user's history before ``as_of`` plus that
category; the candidates are the category's top-N products by FAISS similarity to the
user's profile; the label is how the user engaged (purchase 3, save 2, click 1, else 0).
Every statistic a feature uses comes from events strictly before ``as_of``: no leakage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ranker.base import RankContext
from ranker.engagement import EngagementStats
from ranker.events import EVENT_TYPES
from ranker.profile import EVENT_WEIGHTS, ProductSpace, ProfileBook
from shopthelook.core.errors import ShopTheLookError
from shopthelook.core.types import Box, Detection, ProductHit

log = logging.getLogger(__name__)

POSITIVE = ("click", "save", "purchase")


class RankerDataError(ShopTheLookError):
    """The events cannot produce training or evaluation queries (empty, too short, unknown)."""


@dataclass
class QueryGroup:
    context: RankContext
    candidates: list[ProductHit]
    #: graded relevance per candidate (0 = not engaged)
    labels: np.ndarray
    #: the moment features are computed at: only events before it are used
    as_of: pd.Timestamp
    #: when the labelled engagement happened (>= as_of)
    label_time: pd.Timestamp
    meta: dict = field(default_factory=dict)


@dataclass
class Snapshot:
    """Everything that depends on the past at one moment: profiles and engagement statistics."""

    as_of: pd.Timestamp
    profiles: ProfileBook
    engagement: EngagementStats


def clean_events(events: pd.DataFrame, space: ProductSpace) -> pd.DataFrame:
    """Known event types and catalog products only, sorted by time; logs what was dropped."""
    if events.empty:
        raise RankerDataError("the events store is empty: log or import events first")
    ok_type = events["event_type"].isin(EVENT_TYPES)
    ok_product = events["product_id"].astype(str).isin(space.row)
    dropped = int((~(ok_type & ok_product)).sum())
    if dropped:
        log.warning("%d events skipped: unknown type or product not in the catalog", dropped)
    kept = events[ok_type & ok_product].copy()
    if kept.empty:
        raise RankerDataError("no event names a product of this catalog: wrong catalog?")
    kept["product_id"] = kept["product_id"].astype(str)
    return kept.sort_values("ts", kind="stable").reset_index(drop=True)


def snapshot(events: pd.DataFrame, space: ProductSpace, as_of, catalog_prices=None) -> Snapshot:
    as_of = _utc(as_of)
    past = events[events["ts"] < as_of]
    return Snapshot(
        as_of=as_of,
        profiles=ProfileBook.build(past, space, as_of=as_of),
        engagement=EngagementStats.build(past, as_of=as_of, catalog_prices=catalog_prices),
    )


def _utc(ts) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def event_queries(
    events: pd.DataFrame,
    space: ProductSpace,
    snap: Snapshot,
    until,
    *,
    n_candidates: int = 200,
    max_queries: int | None = None,
    seed: int = 0,
) -> list[QueryGroup]:
    """Query groups for the positive engagements in [snap.as_of, until) by users with history."""
    until = _utc(until)
    window = events[
        (events["ts"] >= snap.as_of) & (events["ts"] < until) & events["event_type"].isin(POSITIVE)
    ].copy()
    window = window[window["user_id"].astype(str).isin(snap.profiles.profiles)]
    if window.empty:
        return []
    window["category"] = [space.category_of(p) for p in window["product_id"]]
    window["day"] = window["ts"].dt.floor("D")
    window["grade"] = window["event_type"].map(EVENT_WEIGHTS)
    grades: dict[tuple, dict[str, float]] = {}
    first_seen: dict[tuple, pd.Timestamp] = {}
    for row in window.itertuples(index=False):
        key = (str(row.user_id), row.day, row.category)
        bucket = grades.setdefault(key, {})
        bucket[row.product_id] = max(bucket.get(row.product_id, 0.0), float(row.grade))
        first_seen[key] = min(first_seen.get(key, row.ts), row.ts)
    keys = sorted(grades)
    if max_queries is not None and len(keys) > max_queries:
        pick = np.random.default_rng(seed).choice(len(keys), max_queries, replace=False)
        keys = [keys[i] for i in sorted(pick)]
    # one FAISS call per category for all its (user) profiles
    found: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for category in sorted({k[2] for k in keys}):
        users = sorted({k[0] for k in keys if k[2] == category})
        centroids = np.stack([snap.profiles.get(u).centroid for u in users])
        for user, hits in zip(users, space.search(centroids, category, n_candidates), strict=True):
            found[(user, category)] = hits
    last_seen = _last_items(events[events["ts"] < snap.as_of], space)
    groups = []
    for key in keys:
        user, day, category = key
        positives = grades[key]
        profile = snap.profiles.get(user)
        hits = [ProductHit(pid, float(score), category) for pid, score in found[(user, category)]]
        labels = np.asarray([positives.get(h.product_id, 0.0) for h in hits], dtype=np.float32)
        detection = Detection(Box(0, 0, 1, 1), category, 1.0, category, (category,), "scene")
        query_vec = last_seen.get(user, profile.centroid)
        context = RankContext(user_id=user, detection=detection, query_embedding=query_vec)
        meta = {"user": user, "day": str(day.date()), "category": category, "positives": positives}
        groups.append(QueryGroup(context, hits, labels, snap.as_of, first_seen[key], meta=meta))
    return groups


def _last_items(past: pd.DataFrame, space: ProductSpace) -> dict[str, np.ndarray]:
    """Each user's most recent engaged product's vector: the 'look' a visual-only system uses."""
    positive = past[past["event_type"].isin(POSITIVE)]
    last = positive.groupby("user_id")["product_id"].last()
    rows = space.rows(last.tolist())
    return {str(u): space.vectors[r] for u, r in zip(last.index, rows, strict=True) if r >= 0}


@dataclass
class TimeSplit:
    #: the as_of moments of the training windows (each window runs to the next moment)
    train_points: list[pd.Timestamp]
    #: the last training window, used for early stopping
    valid_point: pd.Timestamp
    #: test queries are engagements at or after this moment ...
    cutoff: pd.Timestamp
    #: ... and before this one
    end: pd.Timestamp
    #: where test features are recomputed (rolling windows); empty: once, at the cut-off
    test_points: list[pd.Timestamp] = field(default_factory=list)

    def test_windows(self) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        """(as_of, until) per test window: features as of as_of, labels in [as_of, until)."""
        points = self.test_points or [self.cutoff]
        return list(zip(points, [*points[1:], self.end], strict=True))


def window_starts(start, stop, window_days: int) -> list[pd.Timestamp]:
    """Every ``window_days`` days from ``start`` (included) to ``stop`` (excluded)."""
    step = pd.Timedelta(days=window_days)
    return list(pd.date_range(_utc(start), _utc(stop) - pd.Timedelta(seconds=1), freq=step))


def time_split(
    events: pd.DataFrame,
    *,
    test_fraction: float = 0.25,
    windows: int = 4,
    cutoff=None,
    window_days: int | None = None,
) -> TimeSplit:
    """Windows by quantiles of positive-event times: history | train windows | valid | test.

    With ``window_days`` the windows are instead that many days long everywhere, test period
    included: features are recomputed at the start of every window, as a live system that
    refreshes profiles and engagement statistics every ``window_days`` days would see them.
    """
    positive = events[events["event_type"].isin(POSITIVE)]["ts"]
    if len(positive) < 20:
        raise RankerDataError(
            f"only {len(positive)} click/save/purchase events: need at least 20 to split by time"
        )
    end = positive.max() + pd.Timedelta(seconds=1)
    cut = _utc(cutoff) if cutoff is not None else positive.quantile(1.0 - test_fraction)
    before = positive[positive < cut]
    if len(before) < 10:
        raise RankerDataError(f"cut-off {cut}: fewer than 10 engagements before it to train on")
    # the first stretch is history only: every training query needs a profile from before it.
    # Rolling windows refresh profiles daily, so a short history-only prefix suffices there
    start = before.quantile(0.05 if window_days else 0.2).floor("D")
    if window_days is not None:
        if window_days < 1:
            raise RankerDataError(
                f"window_days must be a whole number of days >= 1, not {window_days}"
            )
        points = window_starts(start, cut, window_days)
        test_points = window_starts(cut, end, window_days)
    else:
        qs = np.linspace(0.2, 1.0, windows + 1)[:-1]
        points = sorted({before.quantile(q).floor("D") for q in qs})
        test_points = []
    points = [p for p in points if p < cut]
    if len(points) < 2:
        raise RankerDataError("events span too short a time to make training windows; log more")
    return TimeSplit(points[:-1], points[-1], cut, end, test_points)
