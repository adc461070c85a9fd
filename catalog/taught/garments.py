"""Garments inside a person: a detected person becomes the garments it wears, each an object
with its own box and one category (fashion catalogs).

The person box is split into body bands (``data/garments.toml``: head, upper, lower, full,
feet as shares of the person box); each band's crop is embedded by the catalog's own
embedder and named by a classifier learned from the catalog's product photos (their stored
embeddings: no scene photos, no extra image pass). Categories sharing a band compete in
its crop; a full-body garment is emitted instead of upper + lower when the full band's
probability of it beats the parts' mean (``exclusive``). A person with nothing named at
``min_score`` stays the person object searching every garment category (today's behaviour).
"""

from __future__ import annotations

import logging
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from detector.base import Detector, best_first
from shopthelook.core.errors import ConfigError
from shopthelook.core.images import crop, to_rgb
from shopthelook.core.types import Box, Detection

log = logging.getLogger(__name__)

PRIORS_FILE = Path(__file__).resolve().parents[2] / "data" / "garments.toml"


@dataclass(frozen=True)
class GarmentPriors:
    """Where on a person each worn category is looked for."""

    bands: dict[str, tuple[float, float, float, float]]
    #: category -> band name
    categories: dict[str, str]
    #: (whole, parts): a full-body garment against the garments it replaces
    exclusive: tuple[tuple[str, tuple[str, ...]], ...] = ()
    person_labels: tuple[str, ...] = ("person",)

    @classmethod
    def from_dict(cls, data: dict) -> GarmentPriors:
        bands = {k: tuple(float(v) for v in box) for k, box in data.get("bands", {}).items()}
        categories = {str(k): str(v) for k, v in data.get("categories", {}).items()}
        for category, band in categories.items():
            if band not in bands:
                raise ConfigError(
                    f"garment priors: category {category!r} names unknown band {band!r}"
                )
        for name, (x1, y1, x2, y2) in bands.items():
            if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
                raise ConfigError(f"garment priors: band {name!r} must lie within 0..1")
        exclusive = tuple(
            (str(e["whole"]), tuple(str(p) for p in e["parts"])) for e in data.get("exclusive", [])
        )
        labels = tuple(data.get("person_labels", ["person"]))
        return cls(bands, categories, exclusive, labels)

    def as_dict(self) -> dict:
        return {
            "bands": {k: list(v) for k, v in self.bands.items()},
            "categories": dict(self.categories),
            "exclusive": [{"whole": w, "parts": list(p)} for w, p in self.exclusive],
            "person_labels": list(self.person_labels),
        }

    def worn(self, categories: Sequence[str]) -> list[str]:
        """The given (catalog) categories that have a band, in the given order."""
        return [c for c in categories if c in self.categories]


def load_priors(path: str | Path | None = None) -> GarmentPriors:
    path = Path(path) if path else PRIORS_FILE
    try:
        return GarmentPriors.from_dict(tomllib.loads(path.read_text()))
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"garment priors {path}: {exc}") from None


def band_box(person: Box, share: Sequence[float], size: tuple[int, int]) -> Box:
    """A band (shares of the person box) in image pixels, clipped to the image."""
    x1, y1, x2, y2 = share
    w, h = person.width, person.height
    width, height = size
    return Box(
        max(0.0, person.x1 + x1 * w),
        max(0.0, person.y1 + y1 * h),
        min(float(width), person.x1 + x2 * w),
        min(float(height), person.y1 + y2 * h),
    )


@dataclass
class GarmentClassifier:
    """Multinomial logistic regression: an embedding -> probability of each category."""

    categories: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # [categories, dim]
    intercept: np.ndarray  # [categories]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = (np.atleast_2d(x) - self.mean) / self.scale
        logits = z @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in ("mean", "scale", "coef", "intercept")}

    @classmethod
    def from_arrays(cls, categories: Sequence[str], arrays: dict) -> GarmentClassifier:
        get = {k: np.asarray(arrays[k], np.float32) for k in ("mean", "scale", "coef", "intercept")}
        return cls(tuple(categories), **get)


def fit_garment_classifier(
    x: np.ndarray,
    labels: Sequence[str],
    categories: Sequence[str],
    *,
    regularisation: float = 0.5,
    max_iter: int = 500,
    sample_weight: np.ndarray | None = None,
) -> GarmentClassifier:
    """Fit on embeddings ``x`` and their category names (classes balanced)."""
    from sklearn.linear_model import LogisticRegression

    categories = tuple(categories)
    index = {c: i for i, c in enumerate(categories)}
    y = np.array([index[c] for c in labels], int)
    present = np.unique(y)
    if len(present) < 2:
        raise ConfigError("a garment classifier needs photos of at least two categories")
    x = np.asarray(x, np.float32)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-3
    z = (x - mean) / scale
    counts = np.bincount(y, minlength=len(categories)).astype(np.float64)
    weights = len(y) / (len(present) * np.maximum(counts, 1))
    w = weights[y] * (sample_weight if sample_weight is not None else 1.0)
    model = LogisticRegression(C=regularisation, max_iter=max_iter)
    model.fit(z, y, sample_weight=w)
    coef = np.zeros((len(categories), x.shape[1]), np.float32)
    intercept = np.full(len(categories), -30.0, np.float32)  # unseen: never chosen
    if len(model.classes_) == 2:
        coef[model.classes_] = np.concatenate([-model.coef_ / 2, model.coef_ / 2])
        intercept[model.classes_] = [-model.intercept_[0] / 2, model.intercept_[0] / 2]
    else:
        coef[model.classes_], intercept[model.classes_] = model.coef_, model.intercept_
    return GarmentClassifier(
        categories, mean.astype(np.float32), scale.astype(np.float32), coef, intercept
    )


@dataclass
class GarmentSettings:
    min_score: float = 0.3
    #: the full garment wins when p(whole | full band) >= full_ratio * mean(p(part | its band))
    full_ratio: float = 1.0
    #: bands narrower or lower than this many pixels are not looked at
    min_side: float = 12.0
    timings: dict[str, float] = field(default_factory=dict)


class GarmentDetector(Detector):
    """A base detector whose person objects are replaced by the garments they wear."""

    name = "garments"

    def __init__(
        self,
        base: Detector,
        classifier: GarmentClassifier,
        priors: GarmentPriors,
        embed: Callable[[list[Image.Image]], np.ndarray],
        *,
        max_objects: int | None = None,
        settings: GarmentSettings | None = None,
    ) -> None:
        self.base, self.classifier, self.priors, self.embed = base, classifier, priors, embed
        self.max_objects = int(max_objects or base.max_objects)
        self.settings = settings or GarmentSettings()
        known = set(classifier.categories)
        self.worn = priors.worn([c for c in classifier.categories if c in known])
        self.timings: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"GarmentDetector({self.base!r}, {len(self.worn)} worn categories)"

    def detect(self, image: Image.Image) -> list[Detection]:
        image = image if image.mode == "RGB" else to_rgb(image)
        found = self.base.detect(image)
        out: list[Detection] = []
        t = time.perf_counter()
        people = 0
        for d in found:
            if d.label in self.priors.person_labels and self.worn:
                people += 1
                out += self.garments_of(image, d) or [d]
            else:
                out.append(d)
        self.timings = {"garments": time.perf_counter() - t, "people": people}
        return best_first(out, self.max_objects)

    def name_region(self, image: Image.Image, box: Box) -> Detection | None:
        return self.base.name_region(image, box)

    def band_probabilities(
        self, image: Image.Image, person: Box
    ) -> dict[str, tuple[Box, np.ndarray]]:
        """Each used band's box and the classifier's probabilities on its crop."""
        bands = list(dict.fromkeys(self.priors.categories[c] for c in self.worn))
        boxes = {b: band_box(person, self.priors.bands[b], image.size) for b in bands}
        boxes = {b: x for b, x in boxes.items() if min(x.width, x.height) >= self.settings.min_side}
        if not boxes:
            return {}
        vectors = self.embed([crop(image, x) for x in boxes.values()])
        probs = self.classifier.predict_proba(np.asarray(vectors, np.float32))
        return {b: (x, p) for (b, x), p in zip(boxes.items(), probs, strict=True)}

    def garments_of(self, image: Image.Image, person: Detection) -> list[Detection]:
        """The garments named inside ``person`` (empty: nothing named confidently)."""
        return self.decide(self.band_probabilities(image, person.box), person)

    def decide(
        self, bands: dict[str, tuple[Box, np.ndarray]], person: Detection
    ) -> list[Detection]:
        column = {c: i for i, c in enumerate(self.classifier.categories)}
        best: dict[str, tuple[float, str]] = {}  # band -> (probability, category)
        for category in self.worn:
            band = self.priors.categories[category]
            if band in bands:
                p = float(bands[band][1][column[category]])
                if p > best.get(band, (-1.0, ""))[0]:
                    best[band] = (p, category)
        chosen = {cat: (p, band) for band, (p, cat) in best.items()}
        for whole, parts in self.priors.exclusive:
            if whole not in chosen:
                continue
            present = [chosen[p][0] for p in parts if p in chosen]
            if not present:
                continue
            if chosen[whole][0] >= self.settings.full_ratio * float(np.mean(present)):
                for p in parts:
                    chosen.pop(p, None)
            else:
                chosen.pop(whole)
        out = []
        for category, (p, band) in chosen.items():
            if p < self.settings.min_score:
                continue
            score = float(min(1.0, p))
            box = bands[band][0]
            out.append(Detection(box, category, score, category, (category,), person.source))
        return best_first(out, self.max_objects)
