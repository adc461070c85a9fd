"""Searching a vector index as it was tuned: tombstones excluded, candidates re-scored exactly."""

from __future__ import annotations

import logging

import faiss
import numpy as np

from catalog.ann_spec import TOMBSTONE, IndexSpec, Rescorer

log = logging.getLogger(__name__)


def apply_search_params(index: faiss.Index, spec: IndexSpec) -> None:
    """Set the tuned nprobe / efSearch on a freshly loaded index."""
    inner = inner_index(index)
    if spec.kind == "hnsw":
        inner.hnsw.efSearch = int(spec.params.get("efSearch", 64))
    elif spec.kind in ("ivf-sq8", "ivf-pq"):
        faiss.extract_index_ivf(inner).nprobe = int(spec.params.get("nprobe", 8))


def inner_index(index: faiss.Index) -> faiss.Index:
    index = faiss.downcast_index(index)
    if isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        return faiss.downcast_index(index.index)
    return index


_LIVE_ONLY = None


def _live_selector():
    global _LIVE_ONLY
    if _LIVE_ONLY is None:
        _LIVE_ONLY = faiss.IDSelectorNot(faiss.IDSelectorBatch(np.array([TOMBSTONE], np.int64)))
    return _LIVE_ONLY


def search(
    index: faiss.Index,
    spec: IndexSpec,
    queries: np.ndarray,
    k: int,
    *,
    rescore: Rescorer | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, ids) per query; tombstones excluded, exact re-scoring when refined."""
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    refine = int(spec.params.get("refine", 1))
    if refine > 1 and rescore is None:
        refine = 1
        _warn_once(
            f"{spec.kind} index tuned with exact re-scoring searched without vectors to "
            "re-score: recall is below the tuned value"
        )
    pool = max(k, k * refine)
    widen = refine > 1 and spec.kind != "hnsw" and bool(spec.added_ids)
    fetch = min(pool + (len(spec.added_ids) if widen else 0), max(1, index.ntotal))
    params = None
    if spec.kind == "hnsw":  # the selector skips tombstones (a no-op when there are none)
        ef = max(int(spec.params.get("efSearch", 64)), fetch)
        params = faiss.SearchParametersHNSW(efSearch=ef, sel=_live_selector())
    scores, ids = (
        index.search(queries, fetch, params=params) if params else index.search(queries, fetch)
    )
    if widen:
        ids = _pool_as_tuned(ids, np.asarray(spec.added_ids, np.int64), pool)
    if refine > 1:
        scores, ids = _rescore(queries, ids, rescore, k)
    return scores[:, :k], ids[:, :k]


def _pool_as_tuned(ids: np.ndarray, added: np.ndarray, pool: int) -> np.ndarray:
    """The candidate pool the index had when tuned, plus the added ids that rank within it.

    An IVF list keeps every code where it was, so each added vector can push at most one
    earlier candidate past the pool's end; fetching len(added) more and keeping the first
    ``pool`` earlier ones restores the tuned pool exactly. Other products' results then change
    only by new products entering them (the catalog's "add changes nothing else" guarantee).
    """
    out = np.full_like(ids, -1)
    for q, row in enumerate(ids):
        new = np.isin(row, added)
        keep = (row >= 0) & (new | (np.cumsum(~new) <= pool))
        kept = row[keep]
        out[q, : len(kept)] = kept
    return out


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        log.warning(message)


def _rescore(queries, ids, rescore: Rescorer, k: int) -> tuple[np.ndarray, np.ndarray]:
    out_s = np.full((len(queries), k), -np.inf, np.float32)
    out_i = np.full((len(queries), k), -1, np.int64)
    for q, row in enumerate(ids):
        row = row[row >= 0]
        if not len(row):
            continue
        exact = rescore(row) @ queries[q]
        order = np.argsort(-exact, kind="stable")[:k]
        out_s[q, : len(order)] = exact[order]
        out_i[q, : len(order)] = row[order]
    return out_s, out_i


def rescorer_for(vectors: np.ndarray, ids: np.ndarray) -> Rescorer:
    """A rescorer over in-memory vectors whose row i has id ids[i]."""
    order = np.argsort(ids)
    sorted_ids = ids[order]

    def rescore(wanted: np.ndarray) -> np.ndarray:
        return vectors[order[np.searchsorted(sorted_ids, wanted)]]

    return rescore
