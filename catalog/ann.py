"""Per-category vector indexes: exact below a size threshold, approximate above, tuned to a recall.

``build_index`` picks the index kind from the category's size:

* ``flat``     exact inner-product search (IndexIDMap2 over IndexFlatIP); n <= exact_max.
* ``ivf-sq8``  inverted lists with 8-bit scalar-quantised codes (a quarter of float32); the
               default above exact_max. Deletes in place, and adding vectors never moves the
               others, so an ``add`` cannot change other products' results.
* ``ivf-pq``   inverted lists with product-quantised codes (d/2 bytes or less) for categories
               above ``pq_min``, where even SQ8 codes are too big for memory.
* ``hnsw``     a graph over SQ8 codes (IndexHNSWSQ): lowest latency, but a graph cannot drop a
               node, so deleted vectors become tombstones (their id set to -1 in the id map,
               which persists in the index file) until ``compact`` rebuilds it. Chosen on request.

Approximate kinds are trained on a sample and their search parameter (nprobe / efSearch) is
raised until recall@k against exact search on held-out queries reaches the target. Optionally
(``refine``) the top k*refine candidates are re-scored exactly with the float32 vectors the
catalog keeps anyway, which buys recall without storing vectors twice. The chosen parameters
and the measured recall go in an ``IndexSpec`` that the catalog stores in its manifest and
re-applies after loading (``apply_search_params``).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import faiss
import numpy as np

from catalog.ann_search import apply_search_params, inner_index, rescorer_for, search
from catalog.ann_spec import (
    COMPACT_TOMBSTONE_SHARE,
    IVF_GROWTH_LIMIT,
    KINDS,
    MAX_ADDED,
    TOMBSTONE,
    IndexOptions,
    IndexSpec,
    Rescorer,
)
from catalog.ann_tuning import tune
from shopthelook.core.errors import CatalogError

__all__ = [
    "KINDS",
    "IndexOptions",
    "IndexSpec",
    "Rescorer",
    "add_vectors",
    "apply_search_params",
    "build_index",
    "choose_kind",
    "compact",
    "count_tombstones",
    "index_bytes",
    "live_count",
    "needs_compaction",
    "remove_ids",
    "rescorer_for",
    "search",
    "spec_of",
    "stored_ids",
]

log = logging.getLogger(__name__)


def choose_kind(n: int, options: IndexOptions) -> str:
    """flat up to exact_max; above it the asked-for kind, or by size when "auto"."""
    if options.kind not in ("auto", *KINDS):
        raise CatalogError(
            f"unknown index kind {options.kind!r}; choose auto or one of {', '.join(KINDS)}"
        )
    if options.kind == "flat" or n <= max(options.exact_max, options.k, 256):
        return "flat"  # 256: too few vectors to train quantizers on
    if options.kind != "auto":
        return options.kind
    return "ivf-pq" if n >= options.pq_min else "ivf-sq8"


def build_index(
    vectors: np.ndarray,
    ids: np.ndarray,
    *,
    exact_max: int = 20_000,
    target_recall: float = 0.95,
    options: IndexOptions | None = None,
    tune_queries: np.ndarray | None = None,
    rescore: Rescorer | None = None,
    **overrides: Any,
) -> tuple[faiss.Index, IndexSpec]:
    """Build, train and tune an index for L2-normalised ``vectors`` with int64 ``ids``.

    ``tune_queries`` (optional) are real query vectors (e.g. embedded scene crops) for tuning;
    without them a sample of the vectors is held out of the index while tuning, then added. ``rescore`` returns
    stored vectors by id and is needed only when ``options.refine > 1``.
    """
    options = options or IndexOptions(exact_max=exact_max, target_recall=target_recall)
    for name, value in overrides.items():
        if not hasattr(options, name):
            raise TypeError(f"build_index got an unknown option {name!r}")
        setattr(options, name, value)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise CatalogError(f"build_index: {vectors.shape} vectors for {ids.shape} ids")
    n, dim = vectors.shape
    started = time.perf_counter()
    kind = choose_kind(n, options)
    rng = np.random.default_rng(options.seed)
    train = (
        vectors
        if n <= options.train_max
        else vectors[np.sort(rng.choice(n, options.train_max, replace=False))]
    )
    index, params = _new_index(kind, dim, n, options)
    if not index.is_trained:
        index.train(train)
    spec = IndexSpec(
        kind=kind,
        dim=dim,
        n=n,
        params=params,
        target_recall=options.target_recall,
        k=options.k,
        train_size=len(train) if kind != "flat" else 0,
    )
    if kind == "flat":
        index.add_with_ids(vectors, ids)
    elif tune_queries is not None and len(tune_queries):
        index.add_with_ids(vectors, ids)
        tune(index, spec, vectors, ids, tune_queries, options, rescore)
    else:
        # hold a sample out while tuning: a query that is itself in the index (an HNSW node)
        # is found far more easily than a new photo, which would tune the search too low
        held = np.zeros(n, bool)
        held[rng.choice(n, min(options.tuning_queries, n // 10), replace=False)] = True
        index.add_with_ids(vectors[~held], ids[~held])
        tune(index, spec, vectors[~held], ids[~held], vectors[held], options, rescore)
        index.add_with_ids(vectors[held], ids[held])
    apply_search_params(index, spec)
    spec.build_seconds = round(time.perf_counter() - started, 3)
    if not spec.target_met:
        log.warning(
            "index (%s, %d vectors) reaches recall@%d %.3f, below the target %.2f",
            kind,
            n,
            spec.k,
            spec.recall,
            spec.target_recall,
        )
    return index, spec


def _new_index(kind: str, dim: int, n: int, options: IndexOptions) -> tuple[faiss.Index, dict]:
    ip = faiss.METRIC_INNER_PRODUCT
    if kind == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), {}
    if kind == "hnsw":
        inner = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, options.hnsw_m, ip)
        inner.hnsw.efConstruction = options.ef_construction
        return faiss.IndexIDMap2(inner), {
            "M": options.hnsw_m,
            "efConstruction": options.ef_construction,
            "efSearch": 64,
            "refine": options.refine,
        }
    # about sqrt(n) lists: a few thousand codes scanned per probe keeps k-means training cheap
    nlist = int(min(65536, max(16, 2 ** round(math.log2(math.sqrt(n))))))
    nlist = min(nlist, max(1, n // 39))  # faiss wants >= 39 training points per list
    quantizer = faiss.IndexFlatIP(dim)
    if kind == "ivf-sq8":
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, ip
        )
        params = {"nlist": nlist, "nprobe": 8, "refine": options.refine}
    else:
        m = _pq_subquantizers(dim)
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, 8, ip)
        index.pq.cp.niter = 10  # 256 centroids per sub-space: more rounds buy little recall
        params = {"nlist": nlist, "nprobe": 8, "pq_m": m, "refine": max(options.refine, 4)}
    index.cp.seed = options.seed
    index.cp.niter = 12
    index.cp.max_points_per_centroid = max(39, options.train_max // nlist)
    return index, params


def _pq_subquantizers(dim: int) -> int:
    """The largest m <= dim/2 dividing dim (one byte per 2+ dimensions)."""
    for m in range(max(1, dim // 2), 0, -1):
        if dim % m == 0:
            return m
    return 1


def spec_of(index: faiss.Index) -> IndexSpec:
    """An IndexSpec read off an index saved without one (catalogs from before index_params)."""
    inner = inner_index(index)
    dim, n = int(index.d), int(index.ntotal)
    if isinstance(inner, faiss.IndexHNSW):
        return IndexSpec("hnsw", dim, n, {"efSearch": int(inner.hnsw.efSearch), "refine": 1})
    try:
        ivf = faiss.extract_index_ivf(inner)
    except RuntimeError:
        return IndexSpec("flat", dim, n)
    kind = "ivf-pq" if isinstance(faiss.downcast_index(ivf), faiss.IndexIVFPQ) else "ivf-sq8"
    return IndexSpec(
        kind, dim, n, {"nlist": int(ivf.nlist), "nprobe": int(ivf.nprobe), "refine": 1}
    )


# -- updates ----------------------------------------------------------------------------
def add_vectors(index: faiss.Index, spec: IndexSpec, vectors: np.ndarray, ids: np.ndarray) -> None:
    """Add without retraining (IVF keeps its lists, so no other product's results move)."""
    if len(ids):
        spec.added_ids.extend(int(i) for i in ids)
        index.add_with_ids(
            np.ascontiguousarray(vectors, dtype=np.float32),
            np.ascontiguousarray(ids, dtype=np.int64),
        )


def remove_ids(index: faiss.Index, spec: IndexSpec, ids: np.ndarray) -> int:
    """Delete in place (flat, IVF) or tombstone (HNSW); returns how many were found."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if not len(ids):
        return 0
    if spec.kind != "hnsw":
        return int(index.remove_ids(faiss.IDSelectorBatch(ids)))
    index = faiss.downcast_index(index)
    id_map = faiss.vector_to_array(index.id_map)
    hit = np.isin(id_map, ids)
    id_map[hit] = TOMBSTONE
    faiss.copy_array_to_vector(id_map, index.id_map)
    index.construct_rev_map()
    return int(hit.sum())


def stored_ids(index: faiss.Index) -> np.ndarray:
    """The ids a search can return (tombstones left out), to check against the product table."""
    index = faiss.downcast_index(index)
    if isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        ids = faiss.vector_to_array(index.id_map)
        return ids[ids != TOMBSTONE]
    ivf = faiss.extract_index_ivf(index)
    lists = ivf.invlists
    parts = [
        faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
        for i in range(ivf.nlist)
        if lists.list_size(i)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def count_tombstones(index: faiss.Index) -> int:
    index = faiss.downcast_index(index)
    if not isinstance(index, faiss.IndexIDMap2) or not isinstance(
        inner_index(index), faiss.IndexHNSW
    ):
        return 0
    return int((faiss.vector_to_array(index.id_map) == TOMBSTONE).sum())


def live_count(index: faiss.Index) -> int:
    """Vectors a search can return (ntotal less tombstones): compare this with the table."""
    return int(index.ntotal) - count_tombstones(index)


def needs_compaction(
    index: faiss.Index, spec: IndexSpec, options: IndexOptions | None = None
) -> str | None:
    """Why the index should be rebuilt, or None: tombstones, or a size its kind no longer fits."""
    options = options or IndexOptions()
    live = live_count(index)
    dead = count_tombstones(index)
    if dead and dead >= COMPACT_TOMBSTONE_SHARE * max(1, index.ntotal):
        return f"{dead} of {index.ntotal} vectors are deleted tombstones"
    if spec.kind == "flat" and live > 2 * options.exact_max:
        return f"exact index holds {live} vectors (> 2 x exact_max {options.exact_max})"
    if spec.kind != "flat" and len(spec.added_ids) > MAX_ADDED:
        return f"{len(spec.added_ids)} vectors added since it was tuned"
    if spec.kind != "flat" and live > IVF_GROWTH_LIMIT * max(1, spec.n):
        return f"grew from {spec.n} to {live} vectors since it was trained"
    if spec.kind != "flat" and live <= options.exact_max // 2:
        return f"shrank to {live} vectors: an exact index is smaller and exact"
    return None


def compact(
    vectors: np.ndarray,
    ids: np.ndarray,
    spec: IndexSpec,
    options: IndexOptions | None = None,
    **kwargs: Any,
) -> tuple[faiss.Index, IndexSpec]:
    """Rebuild from the live vectors (drops tombstones, re-chooses the kind, re-tunes)."""
    options = options or IndexOptions(target_recall=spec.target_recall, k=spec.k)
    return build_index(vectors, ids, options=options, **kwargs)


def index_bytes(index: faiss.Index) -> int:
    """Serialized size: what the index occupies in memory, to a few percent."""
    return int(faiss.serialize_index(index).size)
