"""Group representations, lookalike search and HitRate@K over style groups.

A group is represented by its members' embeddings, compared as in seed 004: ``mean`` (cosine
of the normalised centroids), ``max`` (the best member pair) or ``mean-top-K`` (the mean of
the K best member pairs). The creator-lookalike evaluation of seed 001 section 3 splits each
group into two disjoint halves and asks whether one half finds the other among all halves.

Embeddings are cached per image path and backbone, so datasets that share images share work.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedder.base import l2_normalize
from shopthelook.core.errors import DatasetError, ShopTheLookError

logger = logging.getLogger(__name__)

DEFAULT_KS = (1, 5, 10, 50)


# -- group similarity -----------------------------------------------------------------------


@dataclass(frozen=True)
class Aggregate:
    """How member embeddings become one group-to-group score (seed 004)."""

    kind: str = "mean"  # "mean" | "max" | "mean-top-k"
    k: int = 3

    @classmethod
    def parse(cls, text: str) -> Aggregate:
        t = text.strip().lower()
        if t in ("mean", "max"):
            return cls(t)
        if t.startswith("mean-top-"):
            try:
                k = int(t.removeprefix("mean-top-"))
            except ValueError:
                k = 0
            if k >= 1:
                return cls("mean-top-k", k)
        raise DatasetError(
            f"unknown aggregate {text!r}: use mean, max or mean-top-K (e.g. mean-top-3)"
        )


def group_means(embeddings: np.ndarray, labels: np.ndarray, order: Sequence) -> np.ndarray:
    """Normalised centroid of each group in ``order`` [G, d]."""
    index = {g: i for i, g in enumerate(order)}
    rows = np.array([index.get(g, -1) for g in labels], dtype=np.int64)
    keep = rows >= 0  # members of groups outside ``order`` do not count
    sums = np.zeros((len(order), embeddings.shape[1]), dtype=np.float64)
    np.add.at(sums, rows[keep], embeddings[keep])
    return l2_normalize(sums)


def group_similarity(
    query_emb: np.ndarray,
    query_labels: np.ndarray,
    cand_emb: np.ndarray,
    cand_labels: np.ndarray,
    query_groups: Sequence,
    cand_groups: Sequence,
    aggregate: Aggregate = Aggregate(),
) -> np.ndarray:
    """[len(query_groups), len(cand_groups)] similarity of each query group to each candidate."""
    if aggregate.kind == "mean":
        q = group_means(query_emb, query_labels, query_groups)
        c = group_means(cand_emb, cand_labels, cand_groups)
        return q @ c.T
    # pad candidate groups to [G, L, d] so each query group is one einsum
    members = [np.flatnonzero(cand_labels == g) for g in cand_groups]
    longest = max(len(m) for m in members)
    padded = np.zeros((len(cand_groups), longest, cand_emb.shape[1]), dtype=np.float32)
    valid = np.zeros((len(cand_groups), longest), dtype=bool)
    for i, m in enumerate(members):
        padded[i, : len(m)] = cand_emb[m]
        valid[i, : len(m)] = True
    out = np.empty((len(query_groups), len(cand_groups)), dtype=np.float32)
    for qi, g in enumerate(query_groups):
        qm = query_emb[query_labels == g]  # [m, d]
        sims = np.einsum("md,gld->gml", qm, padded)
        sims = np.where(valid[:, None, :], sims, -np.inf).reshape(len(cand_groups), -1)
        if aggregate.kind == "max":
            out[qi] = sims.max(axis=1)
        else:
            n_pairs = len(qm) * valid.sum(axis=1)
            k = np.minimum(aggregate.k, n_pairs)
            top = -np.sort(-sims, axis=1)[:, : aggregate.k]
            top = np.where(np.arange(top.shape[1])[None, :] < k[:, None], top, 0.0)
            out[qi] = top.sum(axis=1) / k
    return out


def lookalikes(
    embeddings: np.ndarray,
    labels: Sequence,
    query_group: str,
    *,
    k: int = 10,
    aggregate: Aggregate = Aggregate(),
) -> list[tuple[str, float]]:
    """The ``k`` groups most similar to ``query_group`` (itself excluded), best first."""
    labels = np.asarray([str(g) for g in labels])
    groups = sorted(set(labels))
    if str(query_group) not in set(groups):
        close = [g for g in groups if str(query_group).lower() in g.lower()][:5]
        hint = f"; did you mean {close}" if close else ""
        raise DatasetError(f"unknown group id {query_group!r} ({len(groups)} groups known){hint}")
    others = [g for g in groups if g != str(query_group)]
    if not others:
        raise DatasetError("lookalikes need at least one other group")
    sims = group_similarity(
        embeddings, labels, embeddings, labels, [str(query_group)], others, aggregate
    )[0]
    order = np.argsort(-sims, kind="stable")[:k]
    return [(others[i], float(sims[i])) for i in order]


# -- creator-lookalike HitRate@K (seed 001 section 3) ----------------------------------------


def split_halves(labels: Sequence, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (half A, half B): each group's members split into two disjoint halves.

    Groups with one member are in neither half (they cannot be split).
    """
    labels = np.asarray([str(g) for g in labels])
    rng = np.random.default_rng(seed)
    a = np.zeros(len(labels), dtype=bool)
    b = np.zeros(len(labels), dtype=bool)
    for g in sorted(set(labels)):
        idx = rng.permutation(np.flatnonzero(labels == g))
        if len(idx) < 2:
            continue
        half = len(idx) // 2
        a[idx[:half]] = True
        b[idx[half:]] = True
    return a, b


def hit_rates_from_similarity(sim: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[int, float]:
    """sim[i, j]: query i vs candidate j; the right answer of query i is candidate i."""
    correct = np.diag(sim)[:, None]
    # ties count against the query: rank = number of candidates scoring >= the right one, minus 1
    rank = (sim > correct).sum(axis=1) + ((sim == correct).sum(axis=1) - 1)
    return {int(k): float(np.mean(rank < k)) for k in ks}


def creator_hit_rate(
    embeddings: np.ndarray,
    labels: Sequence,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    aggregate: Aggregate = Aggregate(),
    seed: int = 0,
    groups: Sequence[str] | None = None,
) -> dict[int, float]:
    """HitRate@K of finding a group's other half among the other halves of all groups.

    ``groups`` restricts the evaluation (and the candidates) to those ids, e.g. held-out ones.
    """
    labels = np.asarray([str(g) for g in labels])
    if groups is not None:
        keep = np.isin(labels, np.asarray([str(g) for g in groups]))
        embeddings, labels = embeddings[keep], labels[keep]
    a, b = split_halves(labels, seed)
    names = sorted(set(labels[a]))
    if len(names) < 2:
        raise DatasetError(
            f"HitRate needs at least two groups with two or more images; got {len(names)}"
        )
    sim = group_similarity(
        embeddings[a], labels[a], embeddings[b], labels[b], names, names, aggregate
    )
    return hit_rates_from_similarity(sim, ks)


# -- cached embeddings ----------------------------------------------------------------------


def default_cache_dir() -> Path:
    from shopthelook.core.config import REPO_ROOT

    return REPO_ROOT / "artifacts" / "cache"


def _store_path(backbone, cache_dir) -> Path:
    import hashlib

    safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in backbone.name)
    # a backbone's name survives changes of its defaults (layers, pooling): key on those too
    config = repr(getattr(backbone, "config", None)).encode()
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    return folder / f"{safe_name}-{backbone.dim}d-{hashlib.sha1(config).hexdigest()[:8]}-store.npz"


def _read_store(path: Path, dim: int) -> dict[str, tuple[np.ndarray, bool]]:
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as f:
            paths, emb, ok = f["paths"], f["embeddings"], f["ok"]
        if emb.shape != (len(paths), dim):
            raise ValueError(f"shape {emb.shape}")
        return {str(p): (e, bool(o)) for p, e, o in zip(paths, emb, ok, strict=True)}
    except (OSError, ValueError, KeyError, EOFError) as exc:
        logger.warning("embedding cache %s unreadable (%s); recomputing", path, exc)
        return {}


def embed_cached(
    backbone,
    images: Sequence[str],
    *,
    cache_dir: str | Path | None = None,
    batch_size: int = 32,
    show_progress: bool = False,
    chunk: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings [n, d], ok [n] bool) of image paths, each computed once per backbone.

    Vectors are kept per image path in one store per backbone (``<cache>/<name>-<d>d-store.npz``),
    so datasets that share images (a product in many rooms, in a catalog too) share the work.
    An unreadable image is logged and marked not ok (its row is zero) instead of stopping
    the job. The images are assumed not to change under their paths (read-only data).
    """
    from tqdm import tqdm

    images = [str(p) for p in images]
    path = _store_path(backbone, cache_dir)
    store = _read_store(path, backbone.dim)
    todo = sorted(set(images) - set(store))
    if todo:
        with tqdm(total=len(todo), desc=f"embed {backbone.name}", disable=not show_progress) as bar:
            for start in range(0, len(todo), chunk):
                part = todo[start : start + chunk]
                try:
                    vecs = backbone.embed_images(part, batch_size=batch_size)
                    store.update({p: (v, True) for p, v in zip(part, vecs, strict=True)})
                except ShopTheLookError:
                    for p in part:  # find the bad file(s), keep the rest
                        try:
                            store[p] = (backbone.embed_images([p], batch_size=1)[0], True)
                        except ShopTheLookError as exc:
                            logger.warning("skipped %s: %s", p, exc)
                            store[p] = (np.zeros(backbone.dim, np.float32), False)
                bar.update(len(part))
        # another process may have added vectors meanwhile: merge before replacing the file
        merged = {**_read_store(path, backbone.dim), **store}
        names = sorted(merged)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, paths=np.asarray(names), ok=np.asarray([merged[n][1] for n in names]),
                 embeddings=np.stack([merged[n][0] for n in names]).astype(np.float32))  # fmt: skip
        tmp.replace(path)
    out = (
        np.stack([store[p][0] for p in images]).astype(np.float32)
        if images
        else np.zeros((0, backbone.dim), np.float32)
    )
    ok = np.asarray([store[p][1] for p in images], dtype=bool)
    return out, ok
