"""What describes a vector index: its kind, the tuned search parameters and the build options.

An ``IndexSpec`` is stored per category in the catalog manifest and re-applied on load.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from shopthelook.core.errors import CatalogError

KINDS = ("flat", "ivf-sq8", "ivf-pq", "hnsw")
NPROBE_LADDER = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
EF_LADDER = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
#: a tombstoned vector is stored with this id; searches exclude it
TOMBSTONE = -1
#: compact when this share of an index is tombstones
COMPACT_TOMBSTONE_SHARE = 0.10
#: the most candidates per result the tuning may re-score exactly
MAX_REFINE = 32
#: adds an index absorbs before compaction re-tunes it (each widens the re-scored pool)
MAX_ADDED = 2000
#: an IVF trained for n vectors serves up to this many times n before it is retrained
IVF_GROWTH_LIMIT = 4.0

#: rescore(ids) -> float32 [len(ids), d] stored vectors of those ids (for ``refine``)
Rescorer = Callable[[np.ndarray], np.ndarray]


@dataclass
class IndexSpec:
    """How one category's index was built and must be searched (stored in the manifest)."""

    kind: str
    dim: int
    n: int
    params: dict[str, Any] = field(default_factory=dict)
    target_recall: float = 0.95
    recall: float | None = None
    k: int = 10
    tuning_queries: int = 0
    train_size: int = 0
    build_seconds: float = 0.0
    #: ids added since the index was tuned (the re-scored pool makes room for them)
    added_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexSpec:
        known = {f: data[f] for f in cls.__dataclass_fields__ if f in data}
        if known.get("kind") not in KINDS:
            raise CatalogError(
                f"index spec has unknown kind {data.get('kind')!r}; rebuild the catalog"
            )
        return cls(**known)

    @property
    def target_met(self) -> bool:
        return self.recall is None or self.recall >= self.target_recall


@dataclass
class IndexOptions:
    """Choices for ``build_index``; the defaults suit 100k-1M vectors per catalog."""

    exact_max: int = 20_000
    pq_min: int = 2_000_000
    kind: str = "auto"  # auto | flat | ivf-sq8 | ivf-pq | hnsw
    target_recall: float = 0.95
    k: int = 10
    tuning_queries: int = 200
    refine: int = 4  # re-score k*refine candidates exactly (needs a rescorer at search time)
    train_max: int = 50_000
    hnsw_m: int = 32
    ef_construction: int = 64
    seed: int = 0
