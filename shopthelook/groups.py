"""Style groups: tables of (image, group), group representations, lookalikes, HitRate@K.

A *group* is a set of images that share a style source: the photos one person contributed
(clothing ``sender_id``, the "same account" of seed 001), the products shown in one IKEA
room, the articles one H&M customer bought, the photos with one furniture-style label, or
any CSV with ``image`` and ``group`` columns.

A group is represented by its members' embeddings, compared as in seed 004: ``mean`` (cosine
of the normalised centroids), ``max`` (the best member pair) or ``mean-top-K`` (the mean of
the K best member pairs). The creator-lookalike evaluation of seed 001 section 3 splits each
group into two disjoint halves and asks whether one half finds the other among all halves.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from embedder.base import l2_normalize
from shopthelook.errors import DatasetError

logger = logging.getLogger(__name__)

GROUP_SOURCES = ("clothing", "ikea-rooms", "hm-customers", "furniture-styles")
DEFAULT_KS = (1, 5, 10, 50)


# -- group tables ---------------------------------------------------------------------------


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DatasetError(
            f"{path}: the file is empty; it needs 'image' and 'group' columns"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable CSV ({exc})") from None


def _need_columns(df: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DatasetError(f"{where}: missing column(s) {missing}; found {list(df.columns)}")


def _data_folder(data_root: str | Path | None, name: str) -> Path:
    if data_root is None:
        from shopthelook.config import load_settings

        data_root = load_settings().data_root
    if data_root is None:
        raise DatasetError(
            f"no data root configured for the {name!r} groups: set data_root "
            "(SHOPTHELOOK_DATA_ROOT) to the folder that holds ikea/, hm/, clothing/"
        )
    folder = Path(data_root) / name
    if not folder.exists():
        raise DatasetError(f"{folder}: dataset folder not found under data_root {data_root}")
    return folder


def load_groups(source: str | Path, data_root: str | Path | None = None) -> pd.DataFrame:
    """A group table: columns ``image`` (absolute path), ``group`` (str), ``item_id`` (str).

    ``source`` is one of :data:`GROUP_SOURCES` or the path of a CSV with ``image`` and
    ``group`` columns (image paths relative to the CSV's folder). Rows without a group are
    dropped; an item appears at most once per group.
    """
    name = str(source)
    if name == "clothing":
        folder = _data_folder(data_root, "clothing")
        df = _read_csv(folder / "images.csv")
        _need_columns(df, ["image", "sender_id"], str(folder / "images.csv"))
        table = pd.DataFrame(
            {
                "image": df["image"],
                "group": df["sender_id"],
                "item_id": df.get("image_id", df["image"]),
            }
        )
    elif name == "ikea-rooms":
        folder = _data_folder(data_root, "ikea")
        products = _read_csv(folder / "products.csv")
        pairs = _read_csv(folder / "room_products.csv")
        _need_columns(products, ["product_id", "image"], str(folder / "products.csv"))
        _need_columns(pairs, ["room_id", "product_id"], str(folder / "room_products.csv"))
        merged = pairs.merge(products[["product_id", "image"]], on="product_id", how="inner")
        table = pd.DataFrame(
            {"image": merged["image"], "group": merged["room_id"], "item_id": merged["product_id"]}
        )
    elif name == "hm-customers":
        folder = _data_folder(data_root, "hm")
        articles = _read_csv(folder / "articles.csv")
        tx = _read_csv(folder / "transactions.csv")
        _need_columns(articles, ["article_id", "image"], str(folder / "articles.csv"))
        _need_columns(tx, ["customer_id", "article_id"], str(folder / "transactions.csv"))
        merged = tx.merge(articles[["article_id", "image"]], on="article_id", how="inner")
        table = pd.DataFrame(
            {
                "image": merged["image"],
                "group": merged["customer_id"],
                "item_id": merged["article_id"],
            }
        )
    elif name == "furniture-styles":
        folder = _data_folder(data_root, "furniture-styles")
        df = _read_csv(folder / "images.csv")
        _need_columns(df, ["image", "style"], str(folder / "images.csv"))
        table = pd.DataFrame({"image": df["image"], "group": df["style"], "item_id": df["image"]})
    else:
        path = Path(name)
        if path.suffix.lower() != ".csv" and not path.exists():
            raise DatasetError(
                f"unknown group source {name!r}: use one of {list(GROUP_SOURCES)} or a CSV file "
                "with 'image' and 'group' columns"
            )
        folder = path.resolve().parent
        df = _read_csv(path)
        _need_columns(df, ["image", "group"], str(path))
        item = df["item_id"] if "item_id" in df.columns else df["image"]
        table = pd.DataFrame({"image": df["image"], "group": df["group"], "item_id": item})
    table = table.astype(str)
    table = table[(table["group"].str.strip() != "") & (table["image"].str.strip() != "")]
    table["image"] = [
        str((folder / p).resolve()) if not Path(p).is_absolute() else p for p in table["image"]
    ]
    table = table.drop_duplicates(["group", "item_id"]).reset_index(drop=True)
    if table.empty:
        raise DatasetError(f"group source {name!r}: no rows with both an image and a group")
    return table


def drop_small_groups(table: pd.DataFrame, min_members: int = 2) -> pd.DataFrame:
    """Groups need two members to give a positive pair (and two halves to evaluate)."""
    sizes = table["group"].map(table["group"].value_counts())
    kept = table[sizes >= min_members].reset_index(drop=True)
    n_dropped = table["group"].nunique() - kept["group"].nunique()
    if n_dropped:
        logger.info("dropped %d group(s) with fewer than %d members", n_dropped, min_members)
    if kept["group"].nunique() < 2:
        raise DatasetError(
            f"fewer than two groups have {min_members}+ members ({table['group'].nunique()} groups, "
            f"{len(table)} images): a group needs at least {min_members} images"
        )
    return kept


def split_groups(
    groups: Sequence[str], *, val_fraction: float, test_fraction: float, seed: int
) -> tuple[list[str], list[str], list[str]]:
    """Disjoint train / validation / test group ids, the same for the same ids and seed."""
    unique = sorted(set(map(str, groups)))
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise DatasetError(f"bad split fractions val={val_fraction} test={test_fraction}")
    order = np.random.default_rng(seed).permutation(len(unique))
    n_test = int(round(len(unique) * test_fraction))
    n_val = int(round(len(unique) * val_fraction))
    test = [unique[i] for i in order[:n_test]]
    val = [unique[i] for i in order[n_test : n_test + n_val]]
    train = [unique[i] for i in order[n_test + n_val :]]
    return train, val, test


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
    from shopthelook.config import REPO_ROOT

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

    from shopthelook.errors import ShopTheLookError

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
