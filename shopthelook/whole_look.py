"""Shop the whole look: one product per object, chosen jointly.

Each object of a :class:`LookResult` brings its own ranked products. The whole look picks one
of each object's top ``candidates`` so that the set scores best on

    F = sum_i (visual_i + prior * log(1 + rooms_i))  +  weight * 2 / (n - 1) * sum_{i<j} (coherence_ij - c0)

where ``visual_i`` is the product's score for its own object (``calibration`` "z": standardised
over the object's candidates), ``rooms_i`` the training groups the product was found in (the
coherence model's co-occurrence counts; ``prior`` 0 leaves it out), ``coherence_ij`` the learned
style coherence of two chosen products (``ranker.coherence``) and ``c0`` the mean coherence
of all candidate pairs of different objects (so the term rewards pairs that go together
better than usual, and a product chosen twice — two identical chairs — is neutral). A beam
over the objects finds a good set, coordinate ascent then improves it one object at a time
until nothing changes or the time budget is spent.

Without a coherence model the whole look is every object's best visual match, and says so.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shopthelook.core.errors import ConfigError
from shopthelook.core.types import LookResult

log = logging.getLogger(__name__)

NO_MODEL = (
    "no style-coherence model is loaded, so the whole look is each object's best visual match; "
    "train one with 'shopthelook coherence train' and pass --coherence DIR"
)
ONE_OBJECT = "only one object was found, so the whole look is its best match"
CALIBRATIONS = ("raw", "z")
NO_OBJECT = (
    "no object was found in this photo, so there is no look to put together; "
    "select an area of the photo to shop a single thing"
)


@dataclass(frozen=True)
class WholeLookSettings:
    #: how much coherence counts against visual match (tuned on validation rooms)
    weight: float = 0.05
    #: products considered per object
    candidates: int = 10
    #: partial sets kept per step of the beam
    beam: int = 16
    #: the search stops improving after this long and returns the best set so far
    time_budget_s: float = 0.25
    #: weight of the popularity prior, log(1 + training rooms with the product)
    prior: float = 0.0
    #: "raw" visual scores, or "z": standardised over each object's candidates
    calibration: str = "raw"

    def __post_init__(self) -> None:
        for name in ("weight", "prior"):
            value = getattr(self, name)
            if not (value >= 0 and np.isfinite(value)):
                raise ConfigError(f"whole-look {name} {value}: give a number >= 0")
        if self.calibration not in CALIBRATIONS:
            raise ConfigError(
                f"whole-look calibration {self.calibration!r}: choose one of "
                + ", ".join(CALIBRATIONS)
            )
        if self.candidates < 1 or self.beam < 1 or self.time_budget_s <= 0:
            raise ConfigError("whole-look candidates, beam and time budget must be positive")


@dataclass
class WholeLookItem:
    object: int
    product_id: str
    score: float
    category: str = ""
    name: str | None = None
    image: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "object": self.object,
            "product_id": self.product_id,
            "score": round(float(self.score), 5),
            "category": self.category,
        }
        if self.name is not None:
            out["name"] = self.name
        return out


@dataclass
class WholeLook:
    products: list[WholeLookItem] = field(default_factory=list)
    #: the set's objective per object (visual + weighted coherence); None without products
    score: float | None = None
    #: mean coherence of the chosen pairs (None without a model or with fewer than two)
    coherence: float | None = None
    #: "coherence" (chosen jointly) or "visual" (each object's top match)
    method: str = "visual"
    message: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "products": [p.to_dict() for p in self.products],
            "score": None if self.score is None else round(float(self.score), 5),
            "method": self.method,
        }
        if self.coherence is not None:
            out["coherence"] = round(float(self.coherence), 5)
        if self.message:
            out["message"] = self.message
        return out

    def product_ids(self) -> list[str]:
        return [p.product_id for p in self.products]


def chooser_for(catalog, coherence: str | None, **settings) -> WholeLookChooser:
    """A chooser over ``catalog`` with the coherence model in folder ``coherence`` (None: the
    visual fallback). The model's recorded weight (chosen on its validation groups) is used
    unless ``weight`` is given."""
    model = None
    if coherence:
        from ranker.coherence import load_coherence

        model = load_coherence(coherence, catalog)
        if "weight" not in settings and model.weight is not None:
            settings["weight"] = model.weight
        if "prior" not in settings and model.prior_weight is not None:
            settings["prior"] = model.prior_weight
        for name in ("calibration", "candidates"):
            if name not in settings and model.metrics.get(f"whole_look_{name}") is not None:
                settings[name] = model.metrics[f"whole_look_{name}"]
    return WholeLookChooser(catalog, model, WholeLookSettings(**settings))


class WholeLookChooser:
    """Chooses whole looks over one catalog (and its coherence model, when there is one)."""

    def __init__(self, catalog, coherence=None, settings: WholeLookSettings | None = None):
        if coherence is not None:
            coherence.check_catalog(catalog)
        self.catalog = catalog
        self.coherence = coherence
        self.settings = settings or WholeLookSettings()

    def choose(
        self,
        result: LookResult,
        *,
        weight: float | None = None,
        prior: float | None = None,
        exclude: str | None = None,
    ) -> WholeLook:
        """The whole look of ``result``; ``weight`` and ``prior`` override the settings,
        ``exclude`` names a training group whose co-occurrence counts are left out (for
        tuning on the model's own groups)."""
        start = time.perf_counter()
        eligible = [
            i for i, o in enumerate(result.objects) if o.detection.source != "scene" and o.products
        ]
        if not eligible:
            return WholeLook(message=NO_OBJECT, seconds=time.perf_counter() - start)
        candidates = [result.objects[i].products[: self.settings.candidates] for i in eligible]
        top1 = [0] * len(eligible)
        if len(eligible) == 1 or self.coherence is None:
            look = self._look(eligible, candidates, top1, None, None)
            look.message = ONE_OBJECT if len(eligible) == 1 else NO_MODEL
            look.seconds = time.perf_counter() - start
            return look
        w = self.settings.weight if weight is None else float(weight)
        ids = sorted({h.product_id for hits in candidates for h in hits})
        where = {pid: n for n, pid in enumerate(ids)}
        sims = self.coherence.pair_logits(self.catalog, ids, exclude=exclude)
        index = [np.array([where[h.product_id] for h in hits]) for hits in candidates]
        visual = [self._calibrate(np.array([float(h.score) for h in hits])) for hits in candidates]
        beta = self.settings.prior if prior is None else float(prior)
        if beta:
            logp = self.coherence.prior(ids, exclude)
            visual = [v + beta * logp[ix] for v, ix in zip(visual, index)]
        problem = _Problem(visual, index, sims, w)
        choice = problem.solve(self.settings.beam, start + self.settings.time_budget_s)
        look = self._look(eligible, candidates, choice, problem, sims)
        look.method = "coherence"
        look.seconds = time.perf_counter() - start
        return look

    def _calibrate(self, scores: np.ndarray) -> np.ndarray:
        if self.settings.calibration == "z" and len(scores) > 1:
            return (scores - scores.mean()) / (scores.std() + 1e-6)
        return scores

    def _look(self, eligible, candidates, choice, problem, sims) -> WholeLook:
        items = []
        for obj, hits, c in zip(eligible, candidates, choice):
            h = hits[c]
            items.append(
                WholeLookItem(
                    object=obj,
                    product_id=h.product_id,
                    score=h.score,
                    category=h.category,
                    name=h.name,
                    image=h.image,
                )
            )
        n = len(items)
        if problem is None:
            return WholeLook(products=items, score=float(np.mean([i.score for i in items])))
        rows = [problem.index[i][c] for i, c in enumerate(choice)]
        pair = [sims[rows[i], rows[j]] for i in range(n) for j in range(i + 1, n)]
        return WholeLook(
            products=items,
            score=problem.objective(choice) / n,
            coherence=float(np.mean(pair)) if pair else None,
        )


class _Problem:
    """Beam search + coordinate ascent over one candidate list per object."""

    def __init__(self, visual, index, sims, weight: float) -> None:
        self.visual, self.index, self.weight = visual, index, weight
        n = len(visual)
        rows = np.concatenate(index)
        owner = np.concatenate([np.full(len(ix), i) for i, ix in enumerate(index)])
        cross = owner[:, None] != owner[None, :]
        block = sims[np.ix_(rows, rows)]
        c0 = float(block[cross].mean()) if cross.any() else 0.0
        self.pair = sims - c0
        np.fill_diagonal(self.pair, 0.0)  # the same product twice is neutral
        self.scale = weight * 2.0 / max(1, n - 1)

    def objective(self, choice) -> float:
        rows = [self.index[i][c] for i, c in enumerate(choice)]
        total = sum(float(self.visual[i][c]) for i, c in enumerate(choice))
        sub = self.pair[np.ix_(rows, rows)]
        return total + self.scale * float(np.triu(sub, 1).sum())

    def solve(self, beam: int, deadline: float) -> list[int]:
        n = len(self.visual)
        states: list[tuple[float, list[int]]] = [(0.0, [])]
        for i in range(n):
            grown = []
            for value, choice in states:
                rows = [self.index[j][c] for j, c in enumerate(choice)]
                gain = self.visual[i].copy()
                if rows:
                    gain += self.scale * self.pair[np.ix_(self.index[i], rows)].sum(axis=1)
                grown += [(value + float(g), [*choice, k]) for k, g in enumerate(gain)]
            grown.sort(key=lambda s: -s[0])
            states = grown[:beam]
            if time.perf_counter() > deadline and i < n - 1:
                # out of time: finish greedily with each remaining object's top match
                best = states[0][1]
                return best + [0] * (n - len(best))
        best = list(states[0][1])
        changed = True
        while changed and time.perf_counter() < deadline:
            changed = False
            for i in range(n):
                others = [self.index[j][c] for j, c in enumerate(best) if j != i]
                gain = self.visual[i] + self.scale * self.pair[np.ix_(self.index[i], others)].sum(
                    axis=1
                )
                k = int(np.argmax(gain))
                if gain[k] > gain[best[i]] + 1e-12:
                    best[i], changed = k, True
        return best
