"""Serving the LightGBM re-ranker: load a model folder, re-order FAISS candidates, explain.

``load_ranker`` never breaks serving: a missing folder or a model trained on another feature
list gives the visual order, with a logged warning and ``fallback_reason`` saying why.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from ranker.attractiveness import ATTRACTIVENESS
from ranker.base import RankContext, Ranker, VisualOrderRanker
from ranker.engagement import STAT_COLUMNS, EngagementStats
from ranker.events import EventStore
from ranker.features import FEATURE_VERSION, FEATURES, REASONS, FeatureBuilder, reason_group
from ranker.prior import Prior
from ranker.profile import ProductSpace, ProfileBook, _profile
from ranker.train import FORMAT_VERSION, MODEL_KIND
from shopthelook.core.errors import ShopTheLookError
from shopthelook.core.types import ProductHit

log = logging.getLogger(__name__)

#: candidates (best first) that get an explanation; the rest keep reason None
EXPLAIN_TOP = 10
#: live events are re-read at most this often
REFRESH_SECONDS = 60.0


class RankerModelError(ShopTheLookError):
    """A ranker model folder is missing, corrupt, or was trained on another feature list."""


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder)
    if not (path / "manifest.json").exists() or not (path / "model.txt").exists():
        raise RankerModelError(
            f"ranker model {path}: no manifest.json/model.txt (train one with 'shopthelook ranker train')"
        )
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except json.JSONDecodeError as exc:
        raise RankerModelError(f"ranker model {path}: manifest.json is corrupt ({exc})") from None
    if manifest.get("kind") != MODEL_KIND or manifest.get("format_version") != FORMAT_VERSION:
        raise RankerModelError(
            f"ranker model {path}: kind {manifest.get('kind')!r} format "
            f"{manifest.get('format_version')!r} is not {MODEL_KIND!r} format {FORMAT_VERSION}"
        )
    if (
        manifest.get("features") != list(FEATURES)
        or manifest.get("feature_version") != FEATURE_VERSION
    ):
        theirs = manifest.get("features") or []
        missing = [f for f in FEATURES if f not in theirs]
        extra = [f for f in theirs if f not in FEATURES]
        raise RankerModelError(
            f"ranker model {path} was trained on another feature list (version "
            f"{manifest.get('feature_version')}, this code has {FEATURE_VERSION}; missing "
            f"{missing[:5]}, unknown {extra[:5]}); retrain it with 'shopthelook ranker train'"
        )
    return manifest


class LightGBMRanker(Ranker):
    name = "lightgbm"

    def __init__(
        self,
        booster: lgb.Booster,
        manifest: dict,
        space: ProductSpace,
        stats: pd.DataFrame,
        events: EventStore | pd.DataFrame | None = None,
        texts: dict | None = None,
        folder: Path | None = None,
        products: pd.DataFrame | None = None,
    ) -> None:
        self.booster = booster
        self.manifest = manifest
        self.space = space
        self.folder = folder
        self.events = events
        self.fallback_reason = None
        self._stats = stats
        self._texts = texts or {}
        self._products = products
        #: the SAME head the model was trained with (manifest "same_head"), else None
        self.style_head = None
        if manifest.get("same_head"):
            from embedder.factory import load_head

            self.style_head = load_head(manifest["same_head"])
        #: the baseline the trees were boosted from (manifest "prior"), else None
        self.prior = Prior.from_dict(manifest.get("prior"))
        self._lock = threading.Lock()
        self._loaded_at = -1e18
        self._builder = self._make_builder()

    @classmethod
    def load(cls, folder: str | Path, catalog=None, events=None) -> LightGBMRanker:
        path = Path(folder)
        manifest = read_manifest(path)
        if catalog is None:
            from catalog import Catalog

            catalog_path = manifest.get("catalog", {}).get("path")
            if not catalog_path:
                raise RankerModelError(f"ranker model {path}: give the catalog it ranks")
            catalog = Catalog.load(catalog_path)
        dim = manifest.get("catalog", {}).get("dim")
        if dim and int(dim) != int(catalog.dim):
            raise RankerModelError(
                f"ranker model {path} was trained on {dim}-d embeddings, the catalog has {catalog.dim}-d"
            )
        try:
            booster = lgb.Booster(model_file=str(path / "model.txt"))
        except lgb.basic.LightGBMError as exc:
            raise RankerModelError(f"ranker model {path}: model.txt is corrupt ({exc})") from None
        if booster.feature_name() != list(FEATURES):
            raise RankerModelError(
                f"ranker model {path}: model.txt features differ from features.json"
            )
        stats = pd.read_parquet(path / "product_stats.parquet")
        stats.index = stats.index.astype(str)
        space = ProductSpace.from_catalog(catalog)
        texts = FeatureBuilder.product_texts(catalog.products)
        return cls(
            booster,
            manifest,
            space,
            stats,
            events=events,
            texts=texts,
            folder=path,
            products=catalog.products,
        )

    def _make_builder(self) -> FeatureBuilder:
        pop = self.manifest.get("population", {})
        frame = pd.DataFrame({"product_id": pop.get("product_ids", [])})
        population = _profile(
            None, frame, np.asarray(pop.get("weights", []), float), self.space, is_population=True
        )
        population.price = pop.get("price")
        profiles = ProfileBook({}, population)
        engagement = EngagementStats(self._stats.reindex(columns=list(STAT_COLUMNS)), None)
        attractiveness = self._stats.reindex(columns=list(ATTRACTIVENESS))
        live = self._live_events()
        if live is not None and not live.empty:
            profiles = ProfileBook.build(live, self.space)
            if not profiles.profiles:
                profiles = ProfileBook({}, population)
            engagement = EngagementStats.build(live, catalog_prices=self._stats.get("price"))
        return FeatureBuilder(
            self.space,
            profiles,
            engagement,
            attractiveness=attractiveness,
            texts=self._texts,
            vocab=self.manifest.get("vocab", {}),
            products=self._products,
            style_head=self.style_head,
        )

    def _live_events(self) -> pd.DataFrame | None:
        self._loaded_at = time.monotonic()
        if self.events is None:
            return None
        if isinstance(self.events, pd.DataFrame):
            return self.events
        try:
            return self.events.to_frame()
        except ShopTheLookError as exc:
            log.warning("ranker: events unavailable, using the training snapshot (%s)", exc)
            return None

    def builder(self) -> FeatureBuilder:
        if (
            isinstance(self.events, EventStore)
            and time.monotonic() - self._loaded_at > REFRESH_SECONDS
        ):
            with self._lock:
                if time.monotonic() - self._loaded_at > REFRESH_SECONDS:
                    self._builder = self._make_builder()
        return self._builder

    def score(
        self, context: RankContext, candidates: list[ProductHit]
    ) -> tuple[np.ndarray, np.ndarray]:
        scores, _, X = self._score_parts(context, candidates)
        return scores, X

    def _score_parts(self, context, candidates):
        """(scores, the prior's part of them or None, features)."""
        X = self.builder().build(context, candidates)
        # one thread: for a few hundred rows OpenMP start-up costs more than it saves, and
        # on a busy machine spinning threads cost tens of milliseconds
        trees = self.booster.predict(X, num_threads=1)
        prior = None if self.prior is None else self.prior.scores(X)
        return (trees if prior is None else trees + prior), prior, X

    def rank(self, context: RankContext, candidates: list[ProductHit]) -> list[ProductHit]:
        if not candidates:
            return []
        scores, prior, X = self._score_parts(context, candidates)
        order = np.argsort(-scores, kind="stable")
        top = order[:EXPLAIN_TOP]
        contrib = self.booster.predict(X[top], pred_contrib=True, num_threads=1)
        if prior is not None:
            # the prior's part of a score, relative to the other candidates, counts for its feature
            contrib[:, FEATURES.index(self.prior.feature)] += prior[top] - prior.mean()
        # per-group sums without BLAS: a tiny matmul can wake a BLAS thread pool (milliseconds)
        by_group = np.stack([contrib[:, cols].sum(axis=1) for cols in _GROUP_COLUMNS], axis=1)
        cold = self.builder().profiles.get(context.user_id).is_population
        reasons = {int(i): _reason(g, context, cold) for i, g in zip(top, by_group, strict=True)}
        rows, values = X.tolist(), scores.tolist()
        ranked = []
        for i in order.tolist():
            hit = candidates[i]
            hit.score = values[i]
            hit.reason = reasons.get(i)
            hit.features = dict(zip(FEATURES, rows[i], strict=True))
            ranked.append(hit)
        return ranked


_GROUPS = sorted({reason_group(f) for f in FEATURES})
_GROUP_COLUMNS = [
    np.asarray([i for i, f in enumerate(FEATURES) if reason_group(f) == g]) for g in _GROUPS
]


def _reason(group_contrib: np.ndarray, context: RankContext, cold: bool, parts: int = 3) -> str:
    """The strongest positive feature groups of one result, in words."""
    order = np.argsort(-group_contrib)
    best = [_GROUPS[j] for j in order[:parts] if group_contrib[j] > 0] or ["visual"]
    words = []
    for group in best:
        key = "popular_style" if group == "style" and cold else group
        words.append(REASONS[key].format(adjective=context.adjective or ""))
    return " · ".join(words)


def load_ranker(folder: str | Path | None, catalog=None, events=None) -> Ranker:
    """The trained ranker in ``folder``, or the visual order (with a warning) when unusable."""
    if folder is None or str(folder) == "":
        fallback = VisualOrderRanker()
        fallback.fallback_reason = "no ranker model configured: visual order"
        return fallback
    try:
        return LightGBMRanker.load(folder, catalog=catalog, events=events)
    except (ShopTheLookError, OSError, ValueError) as exc:
        fallback = VisualOrderRanker()
        fallback.fallback_reason = f"ranker unavailable, showing the visual order: {exc}"
        log.warning(fallback.fallback_reason)
        return fallback
