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
from ranker.coherence_pairs import cross_features, fit_pairwise, series_of
from ranker.cooccurrence import Cooccurrence
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
    #: logistic-regression weights: "bias", "head_cos", "visual_cos", "same:<field>",
    #: "cooc:product", "cooc:series"
    coef: dict[str, float] = field(default_factory=dict)
    #: products and pairs counted over the training groups (None: no co-occurrence features)
    cooccurrence: Cooccurrence | None = None

    @property
    def model_id(self) -> str:
        return self.head.head_id

    def space(self, vectors: np.ndarray) -> np.ndarray:
        return self.head.transform(np.asarray(vectors, dtype=np.float32))

    def pairwise(self, vectors: np.ndarray) -> np.ndarray:
        """SAME-head cosine of every pair of the given catalog vectors."""
        z = self.space(vectors)
        return z @ z.T

    def pair_logits(self, catalog, product_ids: Sequence[str], exclude: str | None = None):
        """Log-odds that each pair of products is found together (the learned pairwise
        model: SAME-head cosine, visual cosine, equal product fields, co-occurrence counts
        without group ``exclude``); the SAME-head cosine alone without pairwise weights."""
        return self.cross_logits(catalog, product_ids, product_ids, exclude)

    def cross_logits(self, catalog, rows, cols, exclude: str | None = None) -> np.ndarray:
        """:meth:`pair_logits` of each row product with each column product."""
        if not self.coef:
            xr, xc = catalog.embeddings(list(rows)), catalog.embeddings(list(cols))
            return self.space(xr) @ self.space(xc).T
        feats = cross_features(self, catalog, rows, cols, exclude)
        out = np.full((len(rows), len(cols)), self.coef.get("bias", 0.0))
        for name, w in self.coef.items():
            if name != "bias" and w and name in feats:
                out = out + w * feats[name]
        return out

    def prior(self, product_ids: Sequence[str], exclude: str | None = None) -> np.ndarray:
        """log(1 + training groups that contain each product); zeros without counts."""
        if self.cooccurrence is None:
            return np.zeros(len(product_ids))
        return self.cooccurrence.prior([str(p) for p in product_ids], exclude)

    @property
    def weight(self) -> float | None:
        """The whole-look weight chosen for this model (``coherence train --weight``)."""
        w = self.metrics.get("whole_look_weight")
        return None if w is None else float(w)

    @property
    def prior_weight(self) -> float | None:
        """The weight of the popularity prior chosen for this model (None: not used)."""
        w = self.metrics.get("whole_look_prior")
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
        if self.cooccurrence is not None:
            self.cooccurrence.save(out)
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
        cooccurrence=Cooccurrence.load(folder),
    )
    if catalog is not None:
        model.check_catalog(catalog, where=str(folder))
    return model


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
    cooccurrence: bool = True,
    drop: Sequence[str] = (),
) -> CoherenceModel:
    """Train a SAME head on the catalog vectors of ``train_groups``; ``val_groups`` drive
    early stopping (HitRate@10) and the pairwise weights, ``test_groups`` are only recorded
    as never seen. With ``cooccurrence`` the products of the train and validation groups
    are counted (each validation pair is fitted without its own group's counts). Pairwise
    features named in ``drop`` get no weight."""
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
    if cooccurrence:
        model.cooccurrence = Cooccurrence.from_table(pd.concat([tr, va]), series_of(catalog))
    if pairwise:
        # on groups the head never trained on, else its cosine looks better than it is
        fit_on = va if va["group"].nunique() >= 2 else tr
        fit_pairwise(model, catalog, fit_on, seed=cfg.seed, drop=drop)
        log.info("pairwise weights: %s", model.coef)
    return model
