"""Features of (user, object, candidate) triples for the re-ranker.

One row per candidate product of one detected object (one query group). Missing signals
are NaN, which LightGBM treats as "unknown" rather than as zero: no SAME head, no adjective,
no price, a product nobody engaged with yet.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from embedder.base import l2_normalize
from ranker.attractiveness import ATTRACTIVENESS
from ranker.base import RankContext
from ranker.engagement import STAT_COLUMNS, EngagementStats
from ranker.profile import ProductSpace, ProfileBook, UserProfile
from shopthelook.core.types import ProductHit

FEATURES: tuple[str, ...] = (
    "visual_sim",  # cosine of the query (crop) and the product
    "visual_rank",  # the product's place in the visual order, 0 = first
    "visual_gap",  # how far below the best visual match
    "style_max",  # seed 004: max / mean / mean-top-K cosine to the user's engaged items
    "style_mean",
    "style_topk",
    "style_centroid",  # cosine to the recency-weighted profile direction
    "profile_items",  # log(1 + items in the profile)
    "cold_start",  # 1 when the population profile stood in for the user
    "meta_same_name",  # the user engaged with a product of the same name (another colour)
    "meta_affinity",  # weighted share of the profile with the candidate's attribute values
    "same_sim",  # cosine in the SAME style space (NaN without a head)
    "adjective_match",  # share of the requested adjective's words in the product text
    "popularity",  # log(1 + weighted engagement count)
    "trend",  # the same over the last four weeks only
    "click_rate",  # smoothed clicks per impression
    "purchase_rate",  # smoothed purchases per impression
    "recency_days",  # days since the product's last engagement
    *(f"attr_{a}" for a in ATTRACTIVENESS),
    "scene_category",  # categorical: the scene's category (room type)
    "object_category",  # categorical: the detected object's catalog category
    "ctx_objects",  # other objects in the scene
    "ctx_same_category",  # other objects of the same category (a set of chairs ...)
    "ctx_crop_sim_mean",  # cosine of the candidate to the other objects' crops
    "ctx_crop_sim_max",
    "ctx_match_sim_mean",  # cosine to the other objects' best catalog matches: fits the room?
    "ctx_match_sim_max",
    "price_ratio",  # log(product price / the user's usual price)
)
CATEGORICAL = ("scene_category", "object_category")
#: bump when a feature's meaning changes, so that older models are refused
FEATURE_VERSION = 1
_COL = {name: i for i, name in enumerate(FEATURES)}
TEXT_COLUMNS = (
    "name",
    "prod_name",
    "product_type",
    "product_type_name",
    "colour_group_name",
    "graphical_appearance_name",
    "color",
    "description",
    "detail_desc",
)
#: product attributes compared with the user's history (PMPCAV-like, seed 004)
ATTRIBUTE_COLUMNS = (
    "product_type",
    "product_type_name",
    "colour_group_name",
    "color",
    "department_name",
    "garment_group_name",
    "graphical_appearance_name",
    "section_name",
)
_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


@dataclass
class FeatureBuilder:
    space: ProductSpace
    profiles: ProfileBook
    engagement: EngagementStats | None = None
    #: ATTRACTIVENESS per product_id
    attractiveness: pd.DataFrame | None = None
    #: product text per product_id, for adjective matching
    texts: dict[str, set[str]] = field(default_factory=dict)
    #: category values seen in training -> code
    vocab: dict[str, list[str]] = field(default_factory=dict)
    #: product table (product_id, name, attribute columns) for the history-attribute features
    products: pd.DataFrame | None = None
    #: optional SAME head applied to stored vectors and the query
    style_head: object | None = None
    top_k_profile: int = 3

    def __post_init__(self) -> None:
        self._attr = None
        if self.attractiveness is not None:
            table = self.attractiveness.reindex(self.space.ids)[list(ATTRACTIVENESS)]
            self._attr = table.to_numpy(dtype=np.float32)
        self._eng = None
        if self.engagement is not None:
            self._eng = self.engagement.lookup(self.space.ids)
        self._style = None
        if self.style_head is not None and self.style_head.dim_in == self.space.dim:
            self._style = self.style_head.transform(self.space.vectors)
        self._codes = {k: {v: i for i, v in enumerate(vals)} for k, vals in self.vocab.items()}
        self._attr_codes: dict[str, np.ndarray] = {}
        if self.products is not None:
            table = self.products.assign(product_id=self.products["product_id"].astype(str))
            table = (
                table.drop_duplicates("product_id").set_index("product_id").reindex(self.space.ids)
            )
            for column in ("name", *ATTRIBUTE_COLUMNS):
                if column in table.columns:
                    codes, _ = pd.factorize(table[column].astype("string").str.lower())
                    self._attr_codes[column] = codes.astype(np.int64)

    @staticmethod
    def product_texts(products: pd.DataFrame) -> dict[str, set[str]]:
        columns = [c for c in TEXT_COLUMNS if c in products.columns]
        if not columns:
            return {}
        joined = products[columns].fillna("").astype(str).agg(" ".join, axis=1)
        return {str(p): _words(t) for p, t in zip(products["product_id"], joined, strict=True)}

    def fit_vocab(self, contexts: Sequence[RankContext]) -> None:
        scene = sorted({c.scene_category for c in contexts if c.scene_category})
        objects = sorted({c.detection.category for c in contexts if c.detection.category})
        self.vocab = {"scene_category": scene, "object_category": objects}
        self._codes = {k: {v: i for i, v in enumerate(vals)} for k, vals in self.vocab.items()}

    def _code(self, kind: str, value: str | None) -> float:
        code = self._codes.get(kind, {}).get(value) if value else None
        return np.nan if code is None else float(code)

    def build(
        self,
        context: RankContext,
        candidates: Sequence[ProductHit],
        profile: UserProfile | None = None,
    ) -> np.ndarray:
        """float32 [len(candidates), len(FEATURES)] for one query group."""
        n = len(candidates)
        out = np.full((n, len(FEATURES)), np.nan, dtype=np.float32)
        if n == 0:
            return out
        rows = self.space.rows([h.product_id for h in candidates])
        known = rows >= 0
        vec = np.zeros((n, self.space.dim), np.float32)
        vec[known] = self.space.vectors[rows[known]]
        query = l2_normalize(np.asarray(context.query_embedding, np.float32).reshape(-1))
        sims = np.where(known, vec @ query, np.nan)
        order = np.argsort(-np.nan_to_num(np.asarray([h.score for h in candidates]), nan=-9))
        rank = np.empty(n, np.float32)
        rank[order] = np.arange(n)
        out[:, _COL["visual_sim"]] = sims
        out[:, _COL["visual_rank"]] = rank
        out[:, _COL["visual_gap"]] = np.nanmax(sims) - sims if known.any() else np.nan

        profile = profile or self.profiles.get(context.user_id)
        style = profile.similarities(vec, self.top_k_profile)
        for key in ("max", "mean", "topk", "centroid"):
            out[:, _COL[f"style_{key}"]] = np.where(known, style[key], np.nan)
        out[:, _COL["profile_items"]] = np.log1p(len(profile.product_ids))
        out[:, _COL["cold_start"]] = float(profile.is_population)
        self._history_features(profile, rows, known, out)

        if self._style is not None:
            q = self.style_head.transform(query[None, :])[0]
            out[known, _COL["same_sim"]] = self._style[rows[known]] @ q
        if context.adjective and self.texts:
            wanted = _words(context.adjective)
            if wanted:
                out[:, _COL["adjective_match"]] = [
                    len(wanted & self.texts.get(h.product_id, set())) / len(wanted)
                    for h in candidates
                ]
        if self._eng is not None:
            eng = np.full((n, self._eng.shape[1]), np.nan, np.float32)
            eng[known] = self._eng[rows[known]]
            eng[~known, :2] = 0.0
            for j, name in enumerate(STAT_COLUMNS[:-1]):
                out[:, _COL[name]] = eng[:, j]
            price = eng[:, STAT_COLUMNS.index("price")]
            if profile.price and profile.price > 0:
                with np.errstate(divide="ignore", invalid="ignore"):
                    out[:, _COL["price_ratio"]] = np.log(price / profile.price)
        if self._attr is not None:
            first = _COL[f"attr_{ATTRACTIVENESS[0]}"]
            out[known, first : first + len(ATTRACTIVENESS)] = self._attr[rows[known]]
        self._context_features(context, vec, known, out)
        return out

    def _history_features(
        self, profile: UserProfile, rows: np.ndarray, known: np.ndarray, out: np.ndarray
    ) -> None:
        if not self._attr_codes or not profile.product_ids or profile.is_population:
            return
        mine = self.space.rows(profile.product_ids)
        weights = profile.weights / max(float(profile.weights.sum()), 1e-9)
        cand = np.where(known, rows, 0)
        if "name" in self._attr_codes:
            names = self._attr_codes["name"]
            same = (names[cand][:, None] == names[mine][None, :]) & (names[mine][None, :] >= 0)
            out[known, _COL["meta_same_name"]] = same[known].any(axis=1)
        shares = []
        for column in ATTRIBUTE_COLUMNS:
            codes = self._attr_codes.get(column)
            if codes is None:
                continue
            match = (codes[cand][:, None] == codes[mine][None, :]) & (codes[mine][None, :] >= 0)
            shares.append(match @ weights)
        if shares:
            out[known, _COL["meta_affinity"]] = np.mean(shares, axis=0)[known]

    def _context_features(
        self, context: RankContext, vec: np.ndarray, known: np.ndarray, out: np.ndarray
    ) -> None:
        out[:, _COL["scene_category"]] = self._code("scene_category", context.scene_category)
        out[:, _COL["object_category"]] = self._code("object_category", context.detection.category)
        others = [
            i
            for i, d in enumerate(context.scene_objects)
            if d is not context.detection and d != context.detection
        ]
        out[:, _COL["ctx_objects"]] = len(others)
        out[:, _COL["ctx_same_category"]] = sum(
            1 for i in others if context.scene_objects[i].category == context.detection.category
        )
        emb = context.scene_embeddings
        if not others or emb is None or len(emb) != len(context.scene_objects):
            return
        crops = l2_normalize(np.asarray(emb, np.float32)[others])
        crop_sims = vec @ crops.T
        out[known, _COL["ctx_crop_sim_mean"]] = crop_sims[known].mean(axis=1)
        out[known, _COL["ctx_crop_sim_max"]] = crop_sims[known].max(axis=1)
        matches = []
        for i, crop in zip(others, crops, strict=True):
            category = context.scene_objects[i].category
            row = self.space.best_match(crop, category) if category else None
            if row is not None:
                matches.append(self.space.vectors[row])
        if matches:
            match_sims = vec @ np.vstack(matches).T
            out[known, _COL["ctx_match_sim_mean"]] = match_sims[known].mean(axis=1)
            out[known, _COL["ctx_match_sim_max"]] = match_sims[known].max(axis=1)


#: what a feature's positive contribution is called in a result's explanation
REASONS = {
    "visual": "similar look",
    "style": "matches your style",
    "popular_style": "popular style",
    "same": "same style family",
    "history": "like what you bought",
    "adjective": "matches “{adjective}”",
    "engagement": "popular",
    "attractiveness": "eye-catching photo",
    "context": "fits the room",
    "price": "in your price range",
}


def reason_group(feature: str) -> str:
    if feature.startswith("visual_"):
        return "visual"
    if feature.startswith("style_") or feature in ("profile_items", "cold_start"):
        return "style"
    if feature.startswith("meta_"):
        return "history"
    if feature == "same_sim":
        return "same"
    if feature == "adjective_match":
        return "adjective"
    if feature in STAT_COLUMNS:
        return "engagement"
    if feature.startswith("attr_"):
        return "attractiveness"
    if feature.startswith("ctx_") or feature in CATEGORICAL:
        return "context"
    return "price"
