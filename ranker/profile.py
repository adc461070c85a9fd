"""User style profiles: the embeddings of what a user engaged with, weighted by kind and age.

A candidate is scored against a profile by its cosine similarity to each engaged item,
aggregated as max, mean and mean of the top K (seed 004), and by its cosine to the weighted
centroid. A user without usable history gets the population profile (the most engaged
products), so the ranker works for a new user too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np
import pandas as pd

from embedder.base import l2_normalize
from ranker.events import events_before

log = logging.getLogger(__name__)

#: how much each kind of event says about taste; impressions say nothing on their own
EVENT_WEIGHTS = {"impression": 0.0, "click": 1.0, "save": 2.0, "purchase": 3.0}
HALF_LIFE_DAYS = 90.0
#: items kept per profile (the most strongly weighted) to bound scoring cost
MAX_PROFILE_ITEMS = 64
POPULATION_ITEMS = 64


class ProductSpace:
    """Product vectors by id, with a FAISS inner-product index per category for retrieval."""

    def __init__(self, product_ids: Sequence[str], vectors: np.ndarray, categories: Sequence[str]):
        self.ids = np.asarray([str(p) for p in product_ids], dtype=object)
        self.vectors = l2_normalize(np.asarray(vectors, dtype=np.float32))
        self.categories = np.asarray([str(c) for c in categories], dtype=object)
        self.row = {pid: i for i, pid in enumerate(self.ids)}
        self._indexes: dict[str, tuple[faiss.Index, np.ndarray]] = {}
        self._rows_by_category: dict[str, np.ndarray] = {}
        self.catalog = None

    @classmethod
    def from_catalog(cls, catalog) -> ProductSpace:
        ids = catalog.products["product_id"].astype(str).tolist()
        space = cls(ids, catalog.embeddings(ids), catalog.products["category"].astype(str).tolist())
        space.catalog = catalog
        return space

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def rows(self, product_ids: Sequence[str]) -> np.ndarray:
        """Row numbers of the ids (-1 where unknown)."""
        return np.asarray([self.row.get(str(p), -1) for p in product_ids], dtype=np.int64)

    def category_of(self, product_id: str) -> str | None:
        i = self.row.get(str(product_id))
        return None if i is None else str(self.categories[i])

    def category_rows(self, category: str) -> np.ndarray:
        rows = self._rows_by_category.get(category)
        if rows is None:
            rows = self._rows_by_category[category] = np.flatnonzero(self.categories == category)
        return rows

    def best_match(self, query: np.ndarray, category: str) -> int | None:
        """Row of the category's product most similar to ``query`` (exact, numpy: a single
        query is cheaper than a FAISS call with its thread pool)."""
        rows = self.category_rows(category)
        if len(rows) == 0:
            return None
        return int(rows[int(np.argmax(self.vectors[rows] @ query))])

    def search(self, queries: np.ndarray, category: str, k: int) -> list[list[tuple[str, float]]]:
        """Top-k products of a category per query by inner product (the catalog's FAISS index
        when built from a catalog, else an exact FAISS index over the vectors)."""
        queries = l2_normalize(np.atleast_2d(queries))
        if self.catalog is not None:
            return self.catalog.search(queries, category, k)
        if category not in self._indexes:
            rows = np.flatnonzero(self.categories == category)
            index = faiss.IndexFlatIP(self.dim)
            index.add(self.vectors[rows])
            self._indexes[category] = (index, rows)
        index, rows = self._indexes[category]
        if len(rows) == 0:
            return [[] for _ in range(len(queries))]
        scores, found = index.search(queries, min(k, len(rows)))
        return [
            [(str(self.ids[rows[j]]), float(s)) for j, s in zip(f, sc, strict=True) if j >= 0]
            for f, sc in zip(found, scores, strict=True)
        ]


@dataclass
class UserProfile:
    user_id: str | None
    product_ids: list[str]
    #: L2-normalised vectors of the engaged products [m, d]
    vectors: np.ndarray
    #: each item's weight (event kind x recency, summed over repeated events) [m]
    weights: np.ndarray
    #: weighted mean direction, L2-normalised [d]
    centroid: np.ndarray
    #: the user's usual price (weighted median of priced events), None if unknown
    price: float | None = None
    n_events: int = 0
    is_population: bool = False

    def similarities(self, candidates: np.ndarray, top_k: int = 3) -> dict[str, np.ndarray]:
        """max / mean / mean-top-K cosine to the profile items and cosine to the centroid."""
        candidates = np.atleast_2d(candidates)
        if len(self.vectors) == 0:
            nan = np.full(len(candidates), np.nan, dtype=np.float32)
            return {"max": nan, "mean": nan, "topk": nan, "centroid": nan}
        sims = candidates @ self.vectors.T  # [n, m]
        k = min(top_k, sims.shape[1])
        top = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:]
        return {
            "max": sims.max(axis=1),
            "mean": sims.mean(axis=1),
            "topk": top.mean(axis=1),
            "centroid": candidates @ self.centroid,
        }


def event_weights(events: pd.DataFrame, as_of: pd.Timestamp, half_life_days: float) -> np.ndarray:
    kind = events["event_type"].map(EVENT_WEIGHTS).fillna(0.0).to_numpy(dtype=np.float64)
    age_days = (as_of - events["ts"]).dt.total_seconds().to_numpy() / 86400.0
    return kind * np.power(0.5, np.clip(age_days, 0.0, None) / half_life_days)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float | None:
    ok = np.isfinite(values) & (weights > 0)
    if not ok.any():
        return None
    v, w = values[ok], weights[ok]
    order = np.argsort(v)
    cum = np.cumsum(w[order])
    return float(v[order][np.searchsorted(cum, cum[-1] / 2.0)])


def _profile(
    user_id,
    frame: pd.DataFrame,
    weights: np.ndarray,
    space: ProductSpace,
    is_population: bool = False,
) -> UserProfile:
    rows = space.rows(frame["product_id"].tolist())
    by_row: dict[int, float] = {}
    for r, w in zip(rows, weights, strict=True):
        if r >= 0 and w > 0:
            by_row[int(r)] = by_row.get(int(r), 0.0) + float(w)
    kept = sorted(by_row.items(), key=lambda kv: -kv[1])[:MAX_PROFILE_ITEMS]
    idx = np.asarray([r for r, _ in kept], dtype=np.int64)
    w = np.asarray([v for _, v in kept], dtype=np.float32)
    vectors = space.vectors[idx] if len(idx) else np.zeros((0, space.dim), np.float32)
    centroid = l2_normalize(w @ vectors) if len(idx) else np.zeros(space.dim, np.float32)
    price = None
    if "price" in frame:
        price = _weighted_median(frame["price"].to_numpy(dtype=np.float64), weights)
    return UserProfile(
        user_id=user_id,
        product_ids=[str(space.ids[i]) for i in idx],
        vectors=vectors,
        weights=w,
        centroid=centroid,
        price=price,
        n_events=int(len(frame)),
        is_population=is_population,
    )


class ProfileBook:
    """Every user's profile as of one moment, plus the population profile for everyone else."""

    def __init__(self, profiles: dict[str, UserProfile], population: UserProfile):
        self.profiles = profiles
        self.population = population

    def get(self, user_id: str | None) -> UserProfile:
        if user_id is None:
            return self.population
        return self.profiles.get(str(user_id), self.population)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self.profiles

    @classmethod
    def build(
        cls,
        events: pd.DataFrame,
        space: ProductSpace,
        *,
        as_of=None,
        half_life_days: float = HALF_LIFE_DAYS,
    ) -> ProfileBook:
        """Profiles from the events strictly before ``as_of`` (all events when None)."""
        events, as_of = events_before(events, as_of)
        known = events["product_id"].astype(str).isin(space.row)
        if (~known).any():
            log.info("%d events name products not in the catalog; ignored", int((~known).sum()))
        events = events[known]
        if events.empty:
            empty = _profile(None, events, np.zeros(0), space, is_population=True)
            return cls({}, empty)
        weights = event_weights(events, as_of, half_life_days)
        profiles = {}
        positions = np.arange(len(events))
        for user, idx in events.groupby("user_id", sort=False).indices.items():
            sel = positions[idx]
            if weights[sel].sum() > 0:
                profiles[str(user)] = _profile(str(user), events.iloc[sel], weights[sel], space)
        population = _population(events, weights, space)
        return cls(profiles, population)


def _population(events: pd.DataFrame, weights: np.ndarray, space: ProductSpace) -> UserProfile:
    """The most engaged products, weighted by engagement: the profile of 'anyone'."""
    totals = pd.Series(weights, index=events["product_id"].to_numpy()).groupby(level=0).sum()
    top = totals[totals > 0].sort_values(ascending=False).head(POPULATION_ITEMS)
    frame = pd.DataFrame({"product_id": top.index, "price": np.nan})
    profile = _profile(None, frame, top.to_numpy(dtype=np.float64), space, is_population=True)
    profile.price = _weighted_median(
        events["price"].to_numpy(dtype=np.float64) if "price" in events else np.zeros(0),
        weights if "price" in events else np.zeros(0),
    )
    return profile
