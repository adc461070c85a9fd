"""Style coherence between catalog products, learned from real co-occurrence.

A coherence model is a SAME head (``embedder.same``) trained on the catalog's own product
vectors, grouped by where products were found together: the products of one IKEA room
(``room_products.csv``), the articles one H&M customer bought, one contributor's clothing.
Two products go together when their head outputs are close: ``coherence(a, b)`` is the dot
product of the L2-normalised outputs, in [-1, 1].

A model is a folder: ``coherence.json`` (the catalog space it reads: backbone, head, dim;
the group source; the train / validation / held-out group ids; metrics) and ``head/`` (the
SAME head's own folder). It is given to ``look``, ``match`` and ``serve`` with
``--coherence DIR``; ``load_coherence`` refuses a model made for another catalog space.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from embedder.same import SameHead
from shopthelook.core.errors import ConfigError, DatasetError, HeadError

log = logging.getLogger(__name__)

MANIFEST = "coherence.json"
HEAD_FOLDER = "head"
FORMAT_VERSION = 1


@dataclass
class CoherenceModel:
    """Maps catalog vectors into a space where "found together" is a high dot product."""

    head: SameHead
    backbone: str
    catalog_head: str
    dim: int
    trained_on: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    #: product-table fields whose equality is a feature ("series" = the name's first word)
    fields: tuple[str, ...] = ()
    #: logistic-regression weights: "bias", "head_cos", "visual_cos", "same:<field>"
    coef: dict[str, float] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        return self.head.head_id

    def space(self, vectors: np.ndarray) -> np.ndarray:
        return self.head.transform(np.asarray(vectors, dtype=np.float32))

    def pairwise(self, vectors: np.ndarray) -> np.ndarray:
        """SAME-head cosine of every pair of the given catalog vectors."""
        z = self.space(vectors)
        return z @ z.T

    def pair_logits(self, catalog, product_ids: Sequence[str]) -> np.ndarray:
        """Log-odds that each pair of products is found together (the learned pairwise
        model: SAME-head cosine, visual cosine and equal product fields); the SAME-head
        cosine alone when no pairwise weights were learned."""
        x = catalog.embeddings(list(product_ids))
        head_cos = self.pairwise(x)
        if not self.coef:
            return head_cos
        out = self.coef.get("bias", 0.0) + self.coef.get("head_cos", 0.0) * head_cos
        out = out + self.coef.get("visual_cos", 0.0) * (x @ x.T)
        table = attribute_table(catalog, self.fields)
        for f in self.fields:
            w = self.coef.get(f"same:{f}", 0.0)
            if w:
                values = np.asarray([table[f].get(str(p), "") for p in product_ids], dtype=object)
                out = out + w * ((values[:, None] == values[None, :]) & (values[:, None] != ""))
        return out

    @property
    def weight(self) -> float | None:
        """The whole-look weight chosen for this model (``coherence train --weight``)."""
        w = self.metrics.get("whole_look_weight")
        return None if w is None else float(w)

    def held_out_groups(self) -> set[str]:
        """Groups the model never trained on (its held-out test groups)."""
        return set(map(str, self.trained_on.get("test_groups", [])))

    def seen_groups(self) -> set[str]:
        """Groups used in training or for early stopping."""
        return set(map(str, self.trained_on.get("train_groups", []))) | set(
            map(str, self.trained_on.get("val_groups", []))
        )

    def save(self, folder: str | Path) -> Path:
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        self.head.save(out / HEAD_FOLDER)
        manifest = {
            "kind": "coherence",
            "format_version": FORMAT_VERSION,
            "model_id": self.model_id,
            "backbone": self.backbone,
            "catalog_head": self.catalog_head,
            "dim": self.dim,
            "trained_on": self.trained_on,
            "metrics": self.metrics,
            "fields": list(self.fields),
            "coef": self.coef,
        }
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        return out

    def check_catalog(self, catalog, where: str = "") -> None:
        """Refuse a catalog whose vectors live in another space than the model was trained on."""
        if (catalog.backbone, catalog.head or "", catalog.dim) != (
            self.backbone,
            self.catalog_head or "",
            self.dim,
        ):
            raise ConfigError(
                f"coherence model {where or self.model_id} was trained on a catalog with "
                f"backbone {self.backbone!r}, head {self.catalog_head or 'none'!r} ({self.dim}-d), "
                f"but catalog {catalog.path} has {catalog.backbone!r}, "
                f"{catalog.head or 'none'!r} ({catalog.dim}-d); train one for this catalog with "
                f"'shopthelook coherence train --catalog {catalog.path} --out DIR'"
            )


def load_coherence(folder: str | Path, catalog=None) -> CoherenceModel:
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.exists():
        raise ConfigError(
            f"{folder} is not a coherence model (no {MANIFEST}); train one with "
            "'shopthelook coherence train --catalog DIR --groups ikea-rooms --out DIR'"
        )
    try:
        meta = json.loads(path.read_text())
        backbone, dim = str(meta["backbone"]), int(meta["dim"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"coherence model {folder}: {MANIFEST} is corrupt ({exc!r})") from None
    if meta.get("kind") != "coherence":
        raise ConfigError(f"{folder}: kind is {meta.get('kind')!r}, not 'coherence'")
    try:
        head = SameHead.load(folder / HEAD_FOLDER)
    except HeadError as exc:
        raise ConfigError(f"coherence model {folder}: {exc}; train it again") from None
    model = CoherenceModel(
        head=head,
        backbone=backbone,
        catalog_head=str(meta.get("catalog_head") or ""),
        dim=dim,
        trained_on=dict(meta.get("trained_on") or {}),
        metrics=dict(meta.get("metrics") or {}),
        fields=tuple(str(f) for f in meta.get("fields") or ()),
        coef={str(k): float(v) for k, v in (meta.get("coef") or {}).items()},
    )
    if catalog is not None:
        model.check_catalog(catalog, where=str(folder))
    return model


# -- product fields -------------------------------------------------------------------------

#: never features: ids, paths, free text, the category (the pools are per category anyway)
_NOT_FIELDS = {"product_id", "image", "name", "category", "row_id", "description", "url"}
_ATTRIBUTES: dict[tuple[int, tuple[str, ...]], dict[str, dict[str, str]]] = {}


def candidate_fields(products: pd.DataFrame) -> tuple[str, ...]:
    """Text fields that describe a product's look and repeat across products (a colour, a
    collection): between 2 and n/3 distinct values and short; plus "series", the first word
    of the name (IKEA's collection: HEMNES, MALM)."""
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
        elif f in products.columns:
            values = products[f].fillna("").astype(str)
        else:
            values = pd.Series([""] * len(products))
        table[f] = dict(zip(ids, values.str.strip().str.lower()))
    _ATTRIBUTES.clear() if len(_ATTRIBUTES) > 8 else None
    _ATTRIBUTES[key] = table
    return table


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


def fit_pairwise(model: CoherenceModel, catalog, table: pd.DataFrame, seed: int = 0) -> dict:
    """Learn how SAME-head cosine, visual cosine and equal fields predict "found together":
    positives are pairs of products of one group; each negative swaps the second product
    for a random product of the same category (as the whole look's candidates are)."""
    rng = np.random.default_rng(seed)
    products = catalog.products
    by_category = products.groupby("category")["product_id"].apply(lambda s: s.astype(str).tolist())
    category = dict(zip(products["product_id"].astype(str), products["category"]))
    pos = []
    for _, members in table.groupby("group")["item_id"]:
        m = sorted(set(members.astype(str)))
        pos += [(a, b) for i, a in enumerate(m) for b in m[i + 1 :]]
    if not pos:
        raise DatasetError("no group has two catalog products: nothing to learn pairs from")
    if len(pos) > 20000:
        pos = [pos[i] for i in rng.choice(len(pos), 20000, replace=False)]
    neg = []
    for a, b in pos:
        pool = by_category[category[b]]
        neg.append((a, pool[int(rng.integers(len(pool)))]))
    pairs = pos + neg
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    fields = candidate_fields(products)
    attrs = attribute_table(catalog, fields)
    xa = catalog.embeddings([a for a, _ in pairs])
    xb = catalog.embeddings([b for _, b in pairs])
    za, zb = model.space(xa), model.space(xb)
    cols = {"head_cos": (za * zb).sum(1), "visual_cos": (xa * xb).sum(1)}
    for f in fields:
        va = np.array([attrs[f].get(a, "") for a, _ in pairs], dtype=object)
        vb = np.array([attrs[f].get(b, "") for _, b in pairs], dtype=object)
        cols[f"same:{f}"] = ((va == vb) & (va != "")).astype(float)
    names = list(cols)
    w = _logistic(np.column_stack([cols[n] for n in names]), y)
    model.fields = fields
    model.coef = {"bias": float(w[0]), **{n: float(v) for n, v in zip(names, w[1:])}}
    return model.coef


# -- training -------------------------------------------------------------------------------


def catalog_groups(catalog, groups: pd.DataFrame) -> pd.DataFrame:
    """The rows of a group table (``group``, ``item_id``) whose item is a catalog product."""
    known = groups["item_id"].astype(str).map(catalog.has_product)
    kept = groups[known].drop_duplicates(["group", "item_id"]).reset_index(drop=True)
    if kept.empty:
        raise DatasetError(
            "no item of the group table is a product of this catalog: train the coherence "
            "model on the groups of the catalog's own dataset (ikea-rooms for an IKEA catalog, "
            "hm-customers for H&M)"
        )
    return kept


def group_metrics(z: np.ndarray, labels: Sequence[str], k: int = 10, seed: int = 0) -> dict:
    """HitRate@k (an item's k nearest others include one of its group) and pair AUC (a pair
    from one group is more coherent than a random pair) over the given items."""
    labels = np.asarray([str(g) for g in labels])
    n = len(labels)
    if n < 3:
        return {"hit_rate": float("nan"), "pair_auc": float("nan"), "items": n}
    sims = z @ z.T
    np.fill_diagonal(sims, -np.inf)
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    has_mate = same.any(axis=1)
    top = np.argsort(-sims, axis=1)[:, : min(k, n - 1)]
    hits = np.take_along_axis(same, top, axis=1).any(axis=1)
    iu = np.triu_indices(n, 1)
    pos, allpairs = sims[iu][same[iu]], sims[iu][~same[iu]]
    rng = np.random.default_rng(seed)
    auc = float("nan")
    if len(pos) and len(allpairs):
        a = rng.choice(pos, size=min(20000, len(pos) * 4))
        b = rng.choice(allpairs, size=len(a))
        auc = float(np.mean(a > b) + 0.5 * np.mean(a == b))
    return {
        "hit_rate": float(hits[has_mate].mean()) if has_mate.any() else float("nan"),
        "pair_auc": auc,
        "items": n,
    }


def train_coherence(
    catalog,
    groups: pd.DataFrame,
    *,
    train_groups: Sequence[str],
    val_groups: Sequence[str],
    test_groups: Sequence[str] = (),
    source: str = "",
    config=None,
    show_progress: bool = False,
    pairwise: bool = True,
) -> CoherenceModel:
    """Train a SAME head on the catalog vectors of ``train_groups``; ``val_groups`` drive
    early stopping (HitRate@10) and ``test_groups`` are only recorded as never seen."""
    from embedder.train_same import TrainConfig, train_same

    table = catalog_groups(catalog, groups)
    train_set, val_set = set(map(str, train_groups)), set(map(str, val_groups))
    if train_set & val_set or (train_set | val_set) & set(map(str, test_groups)):
        raise DatasetError("train, validation and test groups must be disjoint")
    tr = table[table["group"].astype(str).isin(train_set)]
    va = table[table["group"].astype(str).isin(val_set)]
    if tr["group"].nunique() < 2:
        raise DatasetError(
            f"only {tr['group'].nunique()} training group(s) have products in the catalog; "
            "a coherence model needs at least two"
        )
    x_tr = catalog.embeddings(tr["item_id"].tolist())
    x_va = catalog.embeddings(va["item_id"].tolist()) if len(va) else None
    cfg = config or TrainConfig(dim_out=128, per_group=4, groups_per_batch=32, max_epochs=30)

    def validate(head: SameHead) -> float:
        if x_va is None:
            return 0.0
        return group_metrics(head.transform(x_va), va["group"].tolist())["hit_rate"]

    result = train_same(
        x_tr,
        tr["group"].tolist(),
        backbone=catalog.backbone,
        config=cfg,
        validate=validate if x_va is not None else None,
        trained_on={"source": source},
        show_progress=show_progress,
    )
    head = result.head
    metrics: dict[str, Any] = {"best_epoch": result.best_epoch, "seconds": round(result.seconds, 1)}
    if x_va is not None:
        metrics["val"] = group_metrics(head.transform(x_va), va["group"].tolist())
        metrics["val_backbone"] = group_metrics(x_va, va["group"].tolist())
    log.info("coherence model trained: %s", metrics)
    model = CoherenceModel(
        head=head,
        backbone=catalog.backbone,
        catalog_head=catalog.head or "",
        dim=catalog.dim,
        trained_on={
            "source": source,
            "train_groups": sorted(train_set),
            "val_groups": sorted(val_set),
            "test_groups": sorted(map(str, test_groups)),
            "train_items": int(len(tr)),
        },
        metrics=metrics,
    )
    if pairwise:
        # on groups the head never trained on, else its cosine looks better than it is
        fit_pairwise(model, catalog, va if va["group"].nunique() >= 2 else tr, seed=cfg.seed)
        log.info("pairwise weights: %s", model.coef)
    return model
