"""Tuning an approximate index to a recall target: the cheapest search breadth and exact
re-scoring depth whose recall@k against exact search on held-out queries meets the target."""

from __future__ import annotations

import time

import faiss
import numpy as np

from catalog.ann_search import apply_search_params, rescorer_for, search
from catalog.ann_spec import EF_LADDER, MAX_REFINE, NPROBE_LADDER, IndexOptions, IndexSpec


def tune(index, spec: IndexSpec, vectors, ids, queries, options: IndexOptions, rescore) -> None:
    """Choose the fastest (refine, nprobe | efSearch) whose recall@k meets the target.

    Codes rank near-duplicates poorly: re-scoring more candidates exactly (refine) is often far
    cheaper than probing more lists, so each refine (doubling from options.refine) gets the
    smallest search breadth that meets the target, and the fastest pair measured wins.
    """
    k = options.k
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    exact = faiss.IndexFlatIP(spec.dim)
    exact.add(vectors)
    truth = [set(ids[r[r >= 0]].tolist()) for r in exact.search(queries, k)[1]]
    spec.tuning_queries = len(queries)
    if spec.kind == "hnsw":
        name, ladder = "efSearch", [v for v in EF_LADDER if v >= k]
    else:
        name, ladder = "nprobe", [p for p in NPROBE_LADDER if p <= spec.params["nlist"]]
    first = int(spec.params.get("refine", 1))
    refines = [first * 2**i for i in range(6) if first * 2**i <= MAX_REFINE] if first > 1 else [1]
    if first > 1 and rescore is None:
        rescore = rescorer_for(vectors, ids)
    best: tuple[float, int, int, float] | None = None  # seconds, refine, breadth, recall
    closest = (-1.0, first, ladder[-1])  # recall, refine, breadth: if nothing meets the target
    for refine in refines:
        seen: list[float] = []
        for value in ladder:
            spec.params.update({name: int(value), "refine": refine})
            apply_search_params(index, spec)
            started = time.perf_counter()
            found = search(index, spec, queries, k, rescore=rescore)[1]
            seconds = time.perf_counter() - started
            recall = float(
                np.mean(
                    [
                        len(t & set(row.tolist())) / max(1, len(t))
                        for row, t in zip(found, truth, strict=True)
                    ]
                )
            )
            closest = max(closest, (recall, refine, int(value)))
            seen.append(recall)
            if best is not None and seconds > best[0]:
                break  # wider searches at this refine are slower than the best found
            if len(seen) > 3 and seen[-1] - seen[-4] < 0.005 and recall < options.target_recall:
                break  # recall has stopped rising with breadth: the codes are the limit
            if recall >= options.target_recall:
                if best is None or seconds < best[0]:
                    best = (seconds, refine, int(value), recall)
                break
        if best is not None and best[1] == refine and best[2] == ladder[0]:
            break  # the narrowest search already suffices: more re-scoring only costs
    recall, refine, value = (best[3], best[1], best[2]) if best else closest
    spec.params.update({name: value, "refine": refine})
    spec.recall = round(recall, 4)
