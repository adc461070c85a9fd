"""The pairwise part of the coherence model: features of two products and their weights.

Features of a pair (a, b): ``head_cos`` (the SAME head's cosine), ``visual_cos`` (the catalog
vectors' cosine), ``same:<field>`` (equal short product fields: colour, type, the name's
first word "series"), and, with co-occurrence counts, ``cooc:product`` and ``cooc:series``
(``ranker.cooccurrence``). A logistic regression of "found together" on them gives the
pair's log-odds; its negatives are what the whole look must tell apart from the real pair:
a random product of the same category and a visual neighbour of the real one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ranker.cooccurrence import FEATURES as COOC_FEATURES
from shopthelook.core.errors import DatasetError

log = logging.getLogger(__name__)

#: never features: ids, paths, free text, the category (the pools are per category anyway)
_NOT_FIELDS = {"product_id", "image", "name", "category", "row_id", "description", "url"}
_ATTRIBUTES: dict[tuple[int, tuple[str, ...]], dict[str, dict[str, str]]] = {}
#: the colour family: the colour field's first word ("white stained oak" -> "white")
FAMILY = "colour_family"


def candidate_fields(products: pd.DataFrame) -> tuple[str, ...]:
    """Text fields that describe a product's look and repeat across products (a colour, a
    collection): between 2 and n/3 distinct values and short; plus "series", the first word
    of the name (IKEA's collection: HEMNES, MALM), and the colour's first word."""
    fields = []
    n = len(products)
    for col in products.columns:
        if col in _NOT_FIELDS or col.endswith(("_id", "_no", "_code")) or col.startswith("_"):
            continue
        values = products[col]
        if not (values.dtype == object or pd.api.types.is_string_dtype(values)):
            continue
        text = values.dropna().astype(str)
        if text.empty or text.str.len().mean() > 40:
            continue
        distinct = text.nunique()
        if 2 <= distinct <= max(2, n // 3):
            fields.append(str(col))
    if "name" in products.columns:
        fields.append("series")
    if "color" in fields:
        fields.append(FAMILY)
    return tuple(fields)


def attribute_table(catalog, fields: Sequence[str]) -> dict[str, dict[str, str]]:
    """field -> product id -> normalised value ("" when missing), cached per catalog."""
    key = (id(catalog), tuple(fields))
    cached = _ATTRIBUTES.get(key)
    if cached is not None:
        return cached
    products = catalog.products
    ids = products["product_id"].astype(str)
    table: dict[str, dict[str, str]] = {}
    for f in fields:
        if f == "series":
            values = products["name"].fillna("").astype(str).str.split().str[0].fillna("")
        elif f == FAMILY and "color" in products.columns:
            words = products["color"].fillna("").astype(str).str.lower()
            values = words.str.split(r"[\s,/-]+", regex=True).str[0].fillna("")
        elif f in products.columns:
            values = products[f].fillna("").astype(str)
        else:
            values = pd.Series([""] * len(products))
        table[f] = dict(zip(ids, values.str.strip().str.lower()))
    if len(_ATTRIBUTES) > 8:
        _ATTRIBUTES.clear()
    _ATTRIBUTES[key] = table
    return table


def series_of(catalog) -> dict[str, str]:
    return attribute_table(catalog, ("series",))["series"]


def matrix_features(model, catalog, ids: Sequence[str], exclude: str | None = None) -> dict:
    """Every pairwise feature of every pair of ``ids``, as matrices by name."""
    return cross_features(model, catalog, ids, ids, exclude)


def cross_features(model, catalog, rows, cols, exclude: str | None = None) -> dict:
    """Every pairwise feature of each row product with each column product."""
    xr, xc = catalog.embeddings(list(rows)), catalog.embeddings(list(cols))
    out = {"head_cos": model.space(xr) @ model.space(xc).T, "visual_cos": xr @ xc.T}
    table = attribute_table(catalog, model.fields)
    for f in model.fields:
        vr = np.asarray([table[f].get(str(p), "") for p in rows], dtype=object)
        vc = np.asarray([table[f].get(str(p), "") for p in cols], dtype=object)
        out[f"same:{f}"] = ((vr[:, None] == vc[None, :]) & (vr[:, None] != "")) * 1.0
    if model.cooccurrence is not None:
        out.update(
            model.cooccurrence.cross_features(
                [str(p) for p in rows], [str(p) for p in cols], exclude
            )
        )
    return out


def pair_columns(model, catalog, pairs, groups: Sequence[str | None]) -> dict[str, np.ndarray]:
    """The same features for a list of pairs (a, b), each counted without its own group."""
    xa = catalog.embeddings([a for a, _ in pairs])
    xb = catalog.embeddings([b for _, b in pairs])
    za, zb = model.space(xa), model.space(xb)
    cols = {"head_cos": (za * zb).sum(1), "visual_cos": (xa * xb).sum(1)}
    attrs = attribute_table(catalog, model.fields)
    for f in model.fields:
        va = np.array([attrs[f].get(a, "") for a, _ in pairs], dtype=object)
        vb = np.array([attrs[f].get(b, "") for _, b in pairs], dtype=object)
        cols[f"same:{f}"] = ((va == vb) & (va != "")).astype(float)
    if model.cooccurrence is not None:
        values = np.array([model.cooccurrence.pair(a, b, g) for (a, b), g in zip(pairs, groups)])
        for n, name in enumerate(COOC_FEATURES):
            cols[name] = values[:, n]
    return cols


def _logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, steps: int = 25) -> np.ndarray:
    """Weights (bias first) of an L2-regularised logistic regression, by Newton steps."""
    x = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(x.shape[1])
    reg = np.full(x.shape[1], l2)
    reg[0] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - y) + reg * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w


def _neighbour(catalog, pid: str, category: str, rng, k: int = 10) -> str | None:
    """A random one of the product's k nearest visual neighbours in its category."""
    search = getattr(catalog, "search", None)
    if search is None:
        return None
    hits = [p for p, _ in search(catalog.embeddings([pid]), category, k + 1)[0] if p != pid]
    return hits[int(rng.integers(len(hits)))] if hits else None


def fit_pairwise(
    model, catalog, table: pd.DataFrame, seed: int = 0, drop: Sequence[str] = ()
) -> dict:
    """Learn how the pair features predict "found together": positives are pairs of products
    of one group; each positive (a, b) gets two negatives, (a, random product of b's
    category) and (a, visual neighbour of b). Co-occurrence counts leave the pair's own group
    out. Features named in ``drop`` get no weight."""
    rng = np.random.default_rng(seed)
    products = catalog.products
    by_category = products.groupby("category")["product_id"].apply(lambda s: s.astype(str).tolist())
    category = dict(zip(products["product_id"].astype(str), products["category"]))
    pos, where = [], []
    for g, members in table.groupby(table["group"].astype(str))["item_id"]:
        m = sorted(set(members.astype(str)))
        pairs = [(a, b) for i, a in enumerate(m) for b in m[i + 1 :]]
        pos += pairs
        where += [g] * len(pairs)
    if not pos:
        raise DatasetError("no group has two catalog products: nothing to learn pairs from")
    if len(pos) > 20000:
        keep = rng.choice(len(pos), 20000, replace=False)
        pos, where = [pos[i] for i in keep], [where[i] for i in keep]
    neg, neg_where = [], []
    for (a, b), g in zip(pos, where):
        pool = by_category[category[b]]
        neg.append((a, pool[int(rng.integers(len(pool)))]))
        near = _neighbour(catalog, b, category[b], rng)
        neg += [(a, near)] if near else []
        neg_where += [g] * (2 if near else 1)
    pairs = pos + neg
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    model.fields = candidate_fields(products)
    cols = pair_columns(model, catalog, pairs, where + neg_where)
    names = [n for n in cols if n not in drop]
    w = _logistic(np.column_stack([cols[n] for n in names]), y)
    model.coef = {"bias": float(w[0]), **{n: float(v) for n, v in zip(names, w[1:])}}
    return model.coef
