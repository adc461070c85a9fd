"""Ranking metrics over query groups: nDCG@k, hit rate@k, MRR, recall@k."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def group_metrics(labels: np.ndarray, scores: np.ndarray, k: int = 10) -> dict[str, float]:
    """Metrics of one group; a group whose positive was not retrieved counts as a miss."""
    labels = np.asarray(labels, dtype=np.float64)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    ranked = labels[order]
    gains = (2.0 ** ranked[:k] - 1.0) / np.log2(np.arange(2, min(k, len(ranked)) + 2))
    ideal = np.sort(labels)[::-1][:k]
    ideal_dcg = ((2.0**ideal - 1.0) / np.log2(np.arange(2, len(ideal) + 2))).sum()
    hits = np.flatnonzero(ranked > 0)
    n_pos = int((labels > 0).sum())
    return {
        f"ndcg@{k}": float(gains.sum() / ideal_dcg) if ideal_dcg > 0 else 0.0,
        f"hr@{k}": float(len(hits) and hits[0] < k),
        "mrr": float(1.0 / (hits[0] + 1)) if len(hits) else 0.0,
        f"recall@{k}": float((ranked[:k] > 0).sum() / n_pos) if n_pos else 0.0,
    }


def mean_metrics(
    labels: Sequence[np.ndarray], scores: Sequence[np.ndarray], k: int = 10, missed: int = 0
) -> dict[str, float]:
    """Means over groups; ``missed`` queries (positive never retrieved) count as zeros."""
    rows = [group_metrics(lab, sc, k) for lab, sc in zip(labels, scores, strict=True)]
    n = len(rows) + missed
    if n == 0:
        return {f"ndcg@{k}": 0.0, f"hr@{k}": 0.0, "mrr": 0.0, f"recall@{k}": 0.0, "queries": 0}
    out = {key: float(sum(r[key] for r in rows) / n) for key in rows[0]} if rows else {}
    out["queries"] = n
    return out
