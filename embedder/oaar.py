"""Style directions: OAAR text directions (seed 001 section 2.2) and label-derived directions.

OAAR: for an adjective, the mean over the 100 CIFAR-100 class names of
``text_emb("a {adj} photo of a {class}") - text_emb("a photo of a {class}")``, normalised.
Averaging over many objects cancels what the adjective says about any one object and keeps
what it says about the photo. An image's score is the dot product with the direction.
It needs a backbone with a text tower (``clip:<model>/<weights>``).

Label directions carry the same object-agnostic idea to backbones without text: for an
attribute value (a furniture style, an H&M colour value), the mean over categories of
(mean embedding of the category's items with the value - mean embedding of the category).

A :class:`Directions` set is saved as a folder: ``directions.json`` (manifest: kind, the
space it lives in, names) and ``directions.npy`` [n, d]. The pipeline uses it as::

    directions = load_directions(folder)
    directions.check_space(backbone_name, head_id, dim)
    adj = directions.score(candidate_vectors, "rustic")
    new_scores = boost(visual_scores, adj, weight=0.1)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedder.base import Backbone, l2_normalize
from shopthelook.core.errors import ConfigError, DatasetError, HeadError

logger = logging.getLogger(__name__)

MANIFEST = "directions.json"
VECTORS = "directions.npy"

# fmt: off
CIFAR100_CLASSES = (
    "apple", "aquarium fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
    "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak tree", "orange", "orchid", "otter", "palm tree", "pear", "pickup truck", "pine tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet pepper", "table", "tank", "telephone",
    "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow tree", "wolf", "woman", "worm",
)
# fmt: on

DEFAULT_ADJECTIVES = (
    "pleasing", "intriguing", "minimalist", "rustic", "cozy", "vintage", "modern", "bright",
    "dark", "colorful", "elegant", "playful",
)  # fmt: skip


def _a(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def oaar_prompts(adjective: str, cls: str) -> tuple[str, str]:
    """("an intriguing photo of a dog", "a photo of a dog")."""
    return f"{_a(adjective)} photo of {_a(cls)}", f"a photo of {_a(cls)}"


@dataclass
class Directions:
    """Named unit vectors in one embedding space (a backbone, optionally behind a head)."""

    names: list[str]
    vectors: np.ndarray  # [n, d] float32, rows L2-normalised
    kind: str  # "oaar" | "labels"
    backbone: str
    head_id: str = "identity"
    source: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or len(self.names) != len(self.vectors):
            raise HeadError(
                f"directions: {len(self.names)} names but vectors of shape {list(self.vectors.shape)}"
            )
        if len(set(self.names)) != len(self.names):
            raise HeadError(f"directions: duplicate names in {self.names}")

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def vector(self, name: str) -> np.ndarray:
        key = name.strip().lower()
        for n, v in zip(self.names, self.vectors, strict=True):
            if n.lower() == key:
                return v
        raise ConfigError(f"unknown adjective {name!r}; this direction set has {self.names}")

    def score(self, embeddings: np.ndarray, name: str) -> np.ndarray:
        """[n] dot products of ``embeddings`` [n, d] with the direction ``name``."""
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise HeadError(
                f"directions live in a {self.dim}-d space, embeddings are {list(x.shape)}"
            )
        return x @ self.vector(name)

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """[n, len(names)] scores on every direction."""
        return np.asarray(embeddings, dtype=np.float32) @ self.vectors.T

    def boost(
        self, scores: Sequence[float], vectors: np.ndarray, name: str, weight: float = 0.1
    ) -> np.ndarray:
        """Candidates' visual ``scores`` raised along direction ``name`` (see :func:`boost`).

        ``vectors`` [n, d] are the candidates' stored vectors, in this set's space.
        """
        return boost(np.asarray(scores, dtype=np.float32), self.score(vectors, name), weight)

    def check_space(self, backbone: str, head_id: str = "identity", dim: int | None = None) -> None:
        """Refuse to score vectors from another space than the one the directions were built in."""
        if (
            backbone != self.backbone
            or head_id != self.head_id
            or (dim is not None and dim != self.dim)
        ):
            raise HeadError(
                f"directions were built for backbone {self.backbone!r} head {self.head_id!r} "
                f"({self.dim}-d), not backbone {backbone!r} head {head_id!r}"
                + (f" ({dim}-d)" if dim is not None else "")
                + "; rebuild them with 'shopthelook directions build'"
            )

    def save(self, folder: str | Path) -> Path:
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        np.save(out / VECTORS, self.vectors)
        manifest = {
            "kind": self.kind,
            "backbone": self.backbone,
            "head_id": self.head_id,
            "dim": self.dim,
            "names": self.names,
            "source": self.source,
        }
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        return out


def load_directions(folder: str | Path) -> Directions:
    folder = Path(folder)
    if not (folder / MANIFEST).exists():
        raise HeadError(
            f"directions folder {folder}: no {MANIFEST} (build one with 'shopthelook directions build')"
        )
    try:
        meta = json.loads((folder / MANIFEST).read_text())
        names = [str(n) for n in meta["names"]]
        kind, backbone = str(meta["kind"]), str(meta["backbone"])
        head_id, dim = str(meta.get("head_id", "identity")), int(meta["dim"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise HeadError(f"directions folder {folder}: {MANIFEST} is corrupt ({exc!r})") from None
    try:
        vectors = np.load(folder / VECTORS, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise HeadError(f"directions folder {folder}: {VECTORS} cannot be read ({exc})") from None
    if vectors.shape != (len(names), dim) or not np.all(np.isfinite(vectors)):
        raise HeadError(
            f"directions folder {folder}: {VECTORS} has shape {list(vectors.shape)}, the manifest "
            f"says {[len(names), dim]} (or it holds NaN); rebuild it"
        )
    return Directions(names, vectors, kind, backbone, head_id, dict(meta.get("source") or {}))


def oaar_directions(
    backbone: Backbone,
    adjectives: Sequence[str] = DEFAULT_ADJECTIVES,
    classes: Sequence[str] = CIFAR100_CLASSES,
) -> Directions:
    """OAAR: per adjective, the mean over ``classes`` of the prompt-difference, normalised."""
    if not backbone.has_text:
        raise ConfigError(
            f"OAAR needs a backbone with a text tower; {backbone.name!r} has none. Use a "
            "clip:<model>/<weights> backbone, or label directions (directions build --labels)"
        )
    adjectives = [a.strip() for a in adjectives if a.strip()]
    if not adjectives:
        raise ConfigError("OAAR: no adjectives given")
    plain = backbone.embed_texts([oaar_prompts("x", c)[1] for c in classes])
    vectors = []
    for adj in adjectives:
        with_adj = backbone.embed_texts([oaar_prompts(adj, c)[0] for c in classes])
        vectors.append((with_adj - plain).mean(axis=0))
    source = {"classes": "cifar100" if tuple(classes) == CIFAR100_CLASSES else list(classes),
              "template": "{a/an} {adjective} photo of {a/an} {class}"}  # fmt: skip
    return Directions(
        adjectives, l2_normalize(np.stack(vectors)), "oaar", backbone.name, source=source
    )


def text_prompt_directions(backbone: Backbone, adjectives: Sequence[str]) -> Directions:
    """The vanilla-CLIP baseline of seed 001 fig. 2: the embedding of "a {adj} photo"."""
    vectors = backbone.embed_texts([f"{_a(a)} photo" for a in adjectives])
    return Directions(list(adjectives), l2_normalize(vectors), "prompt", backbone.name)


def label_directions(
    embeddings: np.ndarray,
    attributes: Sequence,
    categories: Sequence | None = None,
    *,
    backbone: str,
    head_id: str = "identity",
    min_items: int = 3,
    source: dict | None = None,
) -> Directions:
    """Per attribute value: mean over categories of (mean(value in cat) - mean(cat)), normalised.

    Categories where the value has fewer than ``min_items`` items, or where every item has
    it (the difference would be zero), do not vote.
    """
    x = np.asarray(embeddings, dtype=np.float32)
    attrs = np.asarray([str(a) for a in attributes])
    cats = np.asarray(["all"] * len(attrs) if categories is None else [str(c) for c in categories])
    if x.ndim != 2 or len(x) != len(attrs) or len(cats) != len(attrs):
        raise DatasetError(f"label directions: {list(x.shape)} embeddings, {len(attrs)} labels")
    names, vectors = [], []
    cat_means = {c: x[cats == c].mean(axis=0) for c in np.unique(cats)}
    for value in sorted(set(attrs) - {""}):
        diffs, weights = [], []
        for c, mean_c in cat_means.items():
            in_c = cats == c
            has = in_c & (attrs == value)
            if has.sum() < min_items or has.sum() == in_c.sum():
                continue
            diffs.append(x[has].mean(axis=0) - mean_c)
            weights.append(1.0)
        if not diffs:
            logger.info(
                "label %r: no category with %d+ items and a contrast; skipped", value, min_items
            )
            continue
        names.append(value)
        vectors.append(np.average(np.stack(diffs), axis=0, weights=weights))
    if not names:
        raise DatasetError(
            f"label directions: no attribute value has {min_items}+ items in a category that "
            "also has items without it"
        )
    return Directions(
        names, l2_normalize(np.stack(vectors)), "labels", backbone, head_id, source or {}
    )


def ranking_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC of ``scores`` for the boolean ``positive`` (Mann-Whitney, ties count half)."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise DatasetError("AUC needs both positive and negative items")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def boost(scores: np.ndarray, adjective_scores: np.ndarray, weight: float = 0.1) -> np.ndarray:
    """Visual scores plus ``weight`` x the adjective scores standardised over the candidates.

    Standardising makes ``weight`` mean the same for every direction and backbone: 0.1 moves a
    candidate one standard deviation above the others' adjective scores by 0.1 in score.
    """
    scores = np.asarray(scores, dtype=np.float32)
    adj = np.asarray(adjective_scores, dtype=np.float32)
    if scores.shape != adj.shape:
        raise ConfigError(f"boost: {scores.shape} scores but {adj.shape} adjective scores")
    if adj.size < 2:
        return scores.copy()
    std = float(adj.std())
    z = (adj - adj.mean()) / std if std > 1e-12 else np.zeros_like(adj)
    return (scores + weight * z).astype(np.float32)
