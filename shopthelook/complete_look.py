"""Complete the look: products of categories the scene does not show that go with it.

For every catalog category that no object of the scene searches (a rug for a room without
one), the category's products are ranked by how well they go with the scene's set (the
whole look's products, else each object's best match):

    score(c) = mean_s coherence(s, c)  +  prior * log(1 + training rooms with c)

with the coherence model's pairwise log-odds (``ranker.coherence``). Without a coherence
model there is nothing to rank by, and no suggestion is made.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shopthelook.core.errors import ConfigError
from shopthelook.core.types import LookResult

log = logging.getLogger(__name__)

#: categories never suggested: they name no kind of thing a shopper could look for
NOT_SUGGESTED = frozenset({"other"})


@dataclass(frozen=True)
class CompleteLookSettings:
    #: suggestions per missing category
    per_category: int = 1
    #: at most this many categories, best first
    categories: int = 6
    #: weight of the popularity prior against the set's mean coherence
    prior: float = 1.0

    def __post_init__(self) -> None:
        if self.per_category < 1 or self.categories < 1:
            raise ConfigError("complete-the-look per_category and categories must be positive")
        if not (self.prior >= 0 and np.isfinite(self.prior)):
            raise ConfigError(f"complete-the-look prior {self.prior}: give a number >= 0")


@dataclass
class Suggestion:
    category: str
    product_id: str
    score: float
    name: str | None = None
    image: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "category": self.category,
            "product_id": self.product_id,
            "score": round(float(self.score), 5),
        }
        if self.name is not None:
            out["name"] = self.name
        return out


def searched_categories(result: LookResult) -> set[str]:
    """The categories some object of the scene searched (its own and its products')."""
    out: set[str] = set()
    for o in result.objects:
        if o.detection.source == "scene":
            continue
        out |= {c for c in (o.detection.category, *o.detection.search_categories) if c}
        out |= {h.category for h in o.products if h.category}
    return out


def scene_set(result: LookResult, whole_look=None) -> list[str]:
    """The scene's products: the whole look's when given, else each object's best match."""
    if whole_look is not None and whole_look.products:
        return whole_look.product_ids()
    return [
        o.products[0].product_id
        for o in result.objects
        if o.products and o.detection.source != "scene"
    ]


class CompleteTheLook:
    """Ranks the products of the categories a scene lacks by coherence with its set."""

    def __init__(self, catalog, coherence, settings: CompleteLookSettings | None = None):
        if coherence is None:
            raise ConfigError(
                "complete the look needs a style-coherence model: train one with "
                "'shopthelook coherence train' and pass --coherence DIR"
            )
        coherence.check_catalog(catalog)
        self.catalog, self.coherence = catalog, coherence
        self.settings = settings or CompleteLookSettings(
            prior=coherence.metrics.get("complete_look_prior", 1.0)
        )
        products = catalog.products
        ids = products["product_id"].astype(str)
        self._by_category = {
            str(c): ids[products["category"] == c].tolist() for c in products["category"].unique()
        }
        self._rows = {pid: n for n, pid in enumerate(ids)}

    def rank(
        self,
        set_ids: Sequence[str],
        category: str,
        *,
        prior: float | None = None,
        exclude: str | None = None,
    ) -> list[tuple[str, float]]:
        """Every product of ``category`` with its score, best first."""
        pool = self._by_category.get(category, [])
        if not pool:
            return []
        beta = self.settings.prior if prior is None else float(prior)
        score = beta * self.coherence.prior(pool, exclude)
        if set_ids:
            logits = self.coherence.cross_logits(self.catalog, list(set_ids), pool, exclude)
            score = score + logits.mean(axis=0)
        order = np.argsort(-score, kind="stable")
        return [(pool[i], float(score[i])) for i in order]

    def suggest(self, result: LookResult, whole_look=None) -> list[Suggestion]:
        """The best products of each missing category, the best categories first."""
        set_ids = scene_set(result, whole_look)
        if not set_ids:
            return []
        missing = sorted(set(self._by_category) - searched_categories(result) - NOT_SUGGESTED)
        ranked = []
        for category in missing:
            top = self.rank(set_ids, category)[: self.settings.per_category]
            if top:
                ranked.append((top[0][1], category, top))
        ranked.sort(key=lambda r: -r[0])
        out = []
        for _, category, top in ranked[: self.settings.categories]:
            for pid, score in top:
                row = self.catalog.products.iloc[self._rows[pid]]
                out.append(
                    Suggestion(
                        category, pid, score, _text(row.get("name")), _text(row.get("image"))
                    )
                )
        return out


def _text(value) -> str | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
