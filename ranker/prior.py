"""Boosting from the strongest single signal instead of from zero.

With a few thousand noisy query groups, lambdarank started from scores of zero spends its
trees re-learning what one feature already says (for H&M purchases: the profile-max
similarity of seed 004) and overfits while doing it. Starting every query group from that
feature's order (LightGBM's ``init_score``) leaves the trees only the corrections to learn,
and early stopping falls back to the baseline's order when there are none.

The prior's score is ``scale x feature``; ``scale`` is ``strength`` divided by the median
within-group standard deviation of the feature in the training data, so ``strength`` means
the same on any backbone: how many lambdarank score units one typical within-query step of
the feature is worth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ranker.features import FEATURES
from shopthelook.core.errors import ShopTheLookError


class PriorError(ShopTheLookError):
    """A prior names an unknown feature or cannot be fitted."""


def _check_feature(feature: str) -> None:
    if feature not in FEATURES:
        raise PriorError(
            f"prior feature {feature!r} is not a ranker feature; use one of "
            f"{', '.join(FEATURES[:8])}, ..."
        )


@dataclass(frozen=True)
class Prior:
    feature: str
    scale: float

    def __post_init__(self) -> None:
        _check_feature(self.feature)

    @classmethod
    def fit(cls, feature: str, strength: float, X: np.ndarray, sizes: np.ndarray) -> Prior:
        _check_feature(feature)
        column = X[:, FEATURES.index(feature)].astype(np.float64)
        bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        spreads = [
            np.nanstd(column[a:b])
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
            if b - a > 1 and np.isfinite(column[a:b]).sum() > 1
        ]
        spread = float(np.median(spreads)) if spreads else 0.0
        # a feature that never varies within a query cannot order anything
        scale = strength / spread if spread > 1e-9 else 0.0
        return cls(feature, float(scale))

    def scores(self, X: np.ndarray) -> np.ndarray:
        column = X[:, FEATURES.index(self.feature)].astype(np.float64)
        # unknown values rank last among known ones rather than at an arbitrary zero
        fill = np.nanmin(column) if np.isfinite(column).any() else 0.0
        return self.scale * np.where(np.isfinite(column), column, fill)

    def to_dict(self) -> dict:
        return {"feature": self.feature, "scale": self.scale}

    @classmethod
    def from_dict(cls, data: dict | None) -> Prior | None:
        if not data:
            return None
        return cls(str(data["feature"]), float(data["scale"]))


def with_prior(scores: np.ndarray, X: np.ndarray, prior: Prior | None) -> np.ndarray:
    return scores if prior is None else scores + prior.scores(X)
