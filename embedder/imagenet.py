"""The 1000 ImageNet-1k class names (``data/imagenet_classes.tsv``: index, WordNet synset,
name, all lemmas), in the classifier's output order."""

from __future__ import annotations

from functools import lru_cache

from shopthelook.core.config import PACKAGE_DATA
from shopthelook.core.errors import ConfigError

CLASSES_FILE = PACKAGE_DATA / "imagenet_classes.tsv"


@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    """Class names by classifier index (the first WordNet lemma, e.g. "table lamp")."""
    try:
        lines = CLASSES_FILE.read_text(encoding="utf-8").splitlines()[1:]
    except OSError as exc:
        raise ConfigError(f"ImageNet class names {CLASSES_FILE}: cannot be read ({exc})") from None
    rows = [line.split("\t") for line in lines if line.strip()]
    if len(rows) != 1000 or any(int(r[0]) != i for i, r in enumerate(rows)):
        raise ConfigError(f"ImageNet class names {CLASSES_FILE}: expected indices 0..999")
    return tuple(r[2] for r in rows)
