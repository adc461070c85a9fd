"""The region classifier: region features -> probability of each catalog category or
background.

Designs (``DESIGNS``):

- ``learned``: multinomial logistic regression (scikit-learn) on every feature column,
  trained on synthetic-scene regions against background regions;
- ``learned-visual``: the same without the ImageNet-head and YOLO evidence columns;
- ``hybrid``: ``learned`` averaged with ``zero-shot`` (weight ``mix`` on the learned one):
  the synthetic scenes teach what the ImageNet head has no class for (lamps, bedding), the
  ImageNet head keeps what real rooms look like;
- ``zero-shot``: no training: a category's score is its summed ImageNet probability (the
  taxonomy's ``imagenet_labels``) or the YOLO confidence of its COCO label, whichever is
  higher.

A fitted classifier is plain arrays (``to_arrays`` / ``from_arrays``): no pickles.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from catalog.taught.regions import FeatureLayout

log = logging.getLogger(__name__)

BACKGROUND = "background"
DESIGNS = ("hybrid", "learned", "learned-visual", "zero-shot")


@dataclass
class RegionClassifier:
    design: str
    categories: tuple[str, ...]
    #: column mask of the features the model reads
    columns: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    #: [classes, features] and [classes]; class 0 is background
    coef: np.ndarray
    intercept: np.ndarray
    #: weight of the learned probabilities in the ``hybrid`` design
    mix: float = 1.0

    @property
    def classes(self) -> tuple[str, ...]:
        return (BACKGROUND, *self.categories)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """[n, 1 + len(categories)]: background first, rows sum to 1."""
        if self.design == "zero-shot":
            return _zero_shot(x, FeatureLayout(self.categories))
        z = (x[:, self.columns] - self.mean) / self.scale
        logits = z @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        if self.design == "hybrid":
            p = self.mix * p + (1.0 - self.mix) * _zero_shot(x, FeatureLayout(self.categories))
        return p

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "columns": self.columns,
            "mean": self.mean,
            "scale": self.scale,
            "coef": self.coef,
            "intercept": self.intercept,
            "mix": np.array([self.mix], np.float32),
        }

    @classmethod
    def from_arrays(
        cls, design: str, categories: Sequence[str], arrays: dict[str, np.ndarray]
    ) -> RegionClassifier:
        return cls(
            design,
            tuple(categories),
            np.asarray(arrays["columns"], bool),
            *(np.asarray(arrays[k], np.float32) for k in ("mean", "scale", "coef", "intercept")),
            float(np.asarray(arrays.get("mix", [1.0])).ravel()[0]),
        )


def feature_columns(design: str, layout: FeatureLayout) -> np.ndarray:
    columns = np.ones(layout.width, bool)
    if design == "learned-visual":
        columns[layout.imagenet] = False
        columns[layout.yolo] = False
    return columns


def fit_classifier(
    x: np.ndarray,
    y: np.ndarray,
    categories: Sequence[str],
    *,
    design: str = "learned",
    regularisation: float = 0.05,
    max_iter: int = 300,
    background_weight: float = 0.5,
    mix: float = 0.5,
) -> RegionClassifier:
    """Fit ``design`` on features ``x`` and labels ``y`` (0 background, i + 1 category i)."""
    from sklearn.linear_model import LogisticRegression

    if design not in DESIGNS:
        raise ValueError(f"region classifier design {design!r}: choose one of {DESIGNS}")
    layout = FeatureLayout(tuple(categories))
    columns = feature_columns(design, layout)
    k = len(categories) + 1
    if design == "zero-shot":
        empty = np.zeros((k, 0), np.float32)
        return RegionClassifier(
            design, tuple(categories), columns, np.zeros(0), np.ones(0), empty, np.zeros(k)
        )
    xs = x[:, columns]
    mean = xs.mean(axis=0)
    scale = xs.std(axis=0) + 1e-3
    z = (xs - mean) / scale
    counts = np.bincount(y, minlength=k).astype(np.float64)
    weights = np.where(counts > 0, len(y) / (k * np.maximum(counts, 1)), 0.0)
    weights[0] *= background_weight
    model = LogisticRegression(C=regularisation, max_iter=max_iter, class_weight=None)
    model.fit(z, y, sample_weight=weights[y])
    coef = np.zeros((k, z.shape[1]), np.float32)
    intercept = np.full(k, -30.0, np.float32)  # a class never seen in training is never chosen
    coef[model.classes_] = model.coef_ if len(model.classes_) > 2 else _binary(model.coef_)
    intercept[model.classes_] = (
        model.intercept_ if len(model.classes_) > 2 else _binary(model.intercept_[:, None])[:, 0]
    )
    return RegionClassifier(
        design,
        tuple(categories),
        columns,
        mean.astype(np.float32),
        scale.astype(np.float32),
        coef,
        intercept,
        mix if design == "hybrid" else 1.0,
    )


def _binary(weights: np.ndarray) -> np.ndarray:
    """scikit-learn's one row for two classes as the two rows of a softmax."""
    return np.concatenate([-weights / 2, weights / 2])


def _zero_shot(x: np.ndarray, layout: FeatureLayout) -> np.ndarray:
    c = len(layout.categories)
    imagenet = x[:, layout.imagenet][:, :c]
    yolo = x[:, layout.yolo]
    scores = np.maximum(imagenet, yolo)
    best = scores.max(axis=1, keepdims=True) if c else np.zeros((len(x), 1))
    background = np.clip(1.0 - best, 0.0, 1.0)
    p = np.concatenate([background, scores], axis=1)
    return p / np.maximum(p.sum(axis=1, keepdims=True), 1e-9)
