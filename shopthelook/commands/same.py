"""``shopthelook same train|eval``, ``shopthelook lookalikes``, ``shopthelook directions build``.

Examples::

    shopthelook same train --groups clothing --backbone yolo --out runs/same-clothing
    shopthelook same eval --groups clothing --head runs/same-clothing
    shopthelook lookalikes --groups ikea-rooms --group <room_id> --backbone yolo
    shopthelook directions build --backbone yolo --labels furniture-styles --out runs/dir-furn
    shopthelook directions build --backbone clip:ViT-B-32/weights.pt --adjectives cozy,rustic --out D
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shopthelook.commands import settings_from_args, show_progress
from shopthelook.core.errors import ConfigError, DatasetError
from shopthelook.core.groups import GROUP_SOURCES, drop_small_groups, load_groups, split_groups
from shopthelook.lookalikes import DEFAULT_KS, Aggregate, creator_hit_rate, embed_cached, lookalikes

logger = logging.getLogger(__name__)


@dataclass
class GroupData:
    table: pd.DataFrame  # image, group, item_id (only rows that embedded)
    embeddings: np.ndarray  # backbone space [n, d]
    backbone_name: str


def cap_group_sizes(table: pd.DataFrame, max_per_group: int, seed: int) -> pd.DataFrame:
    """At most ``max_per_group`` members per group (a fixed sample), so one prolific account
    does not dominate the training batches or the embedding time."""
    if max_per_group <= 0:
        return table
    shuffled = table.sample(frac=1.0, random_state=seed)
    return (
        shuffled.groupby("group", sort=False)
        .head(max_per_group)
        .sort_index()
        .reset_index(drop=True)
    )


def group_data(
    source: str,
    backbone,
    *,
    data_root=None,
    max_per_group: int = 64,
    seed: int = 0,
    cache_dir=None,
    progress: bool = False,
    min_members: int = 2,
) -> GroupData:
    """Load a group table, cap group sizes, embed with the backbone (cached), drop failures."""
    table = cap_group_sizes(load_groups(source, data_root), max_per_group, seed)
    table = drop_small_groups(table, min_members)
    emb, ok = embed_cached(
        backbone, table["image"].tolist(), cache_dir=cache_dir, show_progress=progress
    )
    if not ok.all():
        logger.warning("%d image(s) could not be read and are left out", int((~ok).sum()))
    table = table[ok].reset_index(drop=True)
    emb = emb[ok]
    return GroupData(table, emb, backbone.name)


def _backbone(name: str, settings):
    from embedder.factory import create_backbone

    return create_backbone(name, settings=settings) if _takes_settings() else create_backbone(name)


def _takes_settings() -> bool:
    import inspect

    from embedder.factory import create_backbone

    return "settings" in inspect.signature(create_backbone).parameters


def _ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(k) for k in text.split(",") if k.strip()}))
    except ValueError:
        raise ConfigError(f"--ks {text!r}: expected comma-separated integers") from None
    if not ks or ks[0] < 1:
        raise ConfigError(f"--ks {text!r}: values must be positive")
    return ks


def _print_rates(label: str, rates: dict[int, float]) -> None:
    print(f"{label:<22}" + "  ".join(f"HR@{k}={v:.3f}" for k, v in rates.items()))


# -- same train ------------------------------------------------------------------------------


def cmd_train(args) -> int:
    from embedder.train_same import TrainConfig, train_same

    settings = settings_from_args(args)
    backbone = _backbone(args.backbone or settings.backbone, settings)
    data = group_data(args.groups, backbone, data_root=args.data_root or settings.data_root,
                      max_per_group=args.max_per_group, seed=args.seed,
                      progress=show_progress(args))  # fmt: skip
    labels = data.table["group"].to_numpy()
    train_ids, val_ids, test_ids = split_groups(
        labels, val_fraction=args.val_fraction, test_fraction=args.test_fraction, seed=args.seed
    )
    is_train = np.isin(labels, train_ids)
    is_val = np.isin(labels, val_ids)
    if len(val_ids) < 2:
        raise DatasetError(f"validation split has {len(val_ids)} group(s); raise --val-fraction")

    def validate(head) -> float:
        return creator_hit_rate(head.transform(data.embeddings[is_val]), labels[is_val],
                                ks=(10,), seed=args.seed)[10]  # fmt: skip

    hidden = tuple(int(h) for h in args.hidden.split(","))
    cfg = TrainConfig(dim_out=args.dim_out, hidden=hidden, residual=args.residual, margin=args.margin,
                      mining=args.mining, max_epochs=args.epochs, patience=args.patience, lr=args.lr,
                      steps_per_epoch=args.steps_per_epoch, seed=args.seed, threads=args.threads,
                      groups_per_batch=args.groups_per_batch, per_group=args.per_group)  # fmt: skip
    trained_on = {
        "groups": str(args.groups),
        "n_images": int(is_train.sum()),
        "n_groups": len(train_ids),
        "split": {"seed": args.seed, "val_fraction": args.val_fraction,
                  "test_fraction": args.test_fraction, "max_per_group": args.max_per_group},
    }  # fmt: skip
    result = train_same(data.embeddings[is_train], labels[is_train], backbone=backbone.name,
                        config=cfg, validate=validate, trained_on=trained_on,
                        show_progress=show_progress(args))  # fmt: skip
    head = result.head
    if test_ids:
        is_test = np.isin(labels, test_ids)
        base = creator_hit_rate(data.embeddings[is_test], labels[is_test], seed=args.seed)
        same = creator_hit_rate(
            head.transform(data.embeddings[is_test]), labels[is_test], seed=args.seed
        )
        head.config.metrics["test_hit_rate_backbone"] = base
        head.config.metrics["test_hit_rate_same"] = same
        head.config.metrics["n_test_groups"] = len(test_ids)
        _print_rates("backbone (test)", base)
        _print_rates("backbone+SAME (test)", same)
    head.config.metrics["peak_rss_mb"] = round(result.peak_rss_mb, 1)
    out = head.save(args.out)
    print(f"saved {head.head_id} to {out} (best epoch {result.best_epoch}, val HR@10 "
          f"{result.best_val:.3f}, {result.seconds:.0f} s)")  # fmt: skip
    return 0


# -- same eval / lookalikes ------------------------------------------------------------------


def _head_and_backbone(args, settings):
    from embedder.factory import load_head

    head = load_head(args.head) if args.head else None
    name = args.backbone or (
        head.backbone if head is not None and head.backbone else settings.backbone
    )
    backbone = _backbone(name, settings)
    if head is not None:
        from embedder.head import Embedder

        Embedder(backbone, head)  # refuses a head trained on another backbone or dimension
    return head, backbone


def cmd_eval(args) -> int:
    settings = settings_from_args(args)
    head, backbone = _head_and_backbone(args, settings)
    split = {}
    if head is not None:
        split = dict(getattr(head, "config", None) and head.config.trained_on.get("split") or {})
    max_per_group = split.get("max_per_group", args.max_per_group)
    seed = split.get("seed", args.seed)
    data = group_data(args.groups, backbone, data_root=args.data_root or settings.data_root,
                      max_per_group=max_per_group, seed=seed, progress=show_progress(args))  # fmt: skip
    labels = data.table["group"].to_numpy()
    groups = None
    if args.split == "test":
        if not split:
            raise ConfigError(
                "--split test needs a head trained by 'same train' (it records the split)"
            )
        same_source = head.config.trained_on.get("groups") == str(args.groups)
        if not same_source:
            raise ConfigError(
                f"the head was trained on {head.config.trained_on.get('groups')!r}, not "
                f"{args.groups!r}; use --split all to evaluate on every group"
            )
        _, _, groups = split_groups(labels, val_fraction=split["val_fraction"],
                                    test_fraction=split["test_fraction"], seed=split["seed"])  # fmt: skip
    ks, agg = _ks(args.ks), Aggregate.parse(args.aggregate)
    rates = creator_hit_rate(
        data.embeddings, labels, ks=ks, aggregate=agg, seed=args.seed, groups=groups
    )
    _print_rates(backbone.name, rates)
    if head is not None:
        rates_same = creator_hit_rate(head.transform(data.embeddings), labels, ks=ks, aggregate=agg,
                                      seed=args.seed, groups=groups)  # fmt: skip
        _print_rates(f"{backbone.name}+SAME", rates_same)
    return 0


def cmd_lookalikes(args) -> int:
    settings = settings_from_args(args)
    head, backbone = _head_and_backbone(args, settings)
    data = group_data(args.groups, backbone, data_root=args.data_root or settings.data_root,
                      max_per_group=args.max_per_group, seed=args.seed,
                      progress=show_progress(args), min_members=1)  # fmt: skip
    emb = head.transform(data.embeddings) if head is not None else data.embeddings
    hits = lookalikes(emb, data.table["group"].to_numpy(), args.group, k=args.k,
                      aggregate=Aggregate.parse(args.aggregate))  # fmt: skip
    if args.json:
        print(json.dumps([{"group": g, "score": round(s, 5)} for g, s in hits]))
    else:
        for rank, (g, s) in enumerate(hits, 1):
            print(f"{rank:>3}  {s:.4f}  {g}")
    return 0


# -- directions build ------------------------------------------------------------------------

LABEL_SOURCES = {
    # name: (relative csv, attribute column, category column or None)
    "furniture-styles": ("furniture-styles/images.csv", "style", None),
    "hm-colour-value": ("hm/articles.csv", "perceived_colour_value_name", "product_type_name"),
    "hm-colour": ("hm/articles.csv", "colour_group_name", "product_type_name"),
}


def load_label_table(source: str, data_root) -> tuple[pd.DataFrame, str, str | None]:
    """(table with absolute 'image', attribute column, category column or None)."""
    if source in LABEL_SOURCES:
        rel, attr, cat = LABEL_SOURCES[source]
        if data_root is None:
            raise DatasetError("no data root configured (SHOPTHELOOK_DATA_ROOT)")
        path = Path(data_root) / rel
    else:
        path, attr, cat = Path(source), "attribute", "category"
    if not path.exists():
        raise DatasetError(f"{path}: no such file (label sources: {list(LABEL_SOURCES)} or a CSV)")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{path}: the file is empty") from None
    if "image" not in df.columns or attr not in df.columns:
        raise DatasetError(f"{path}: needs columns 'image' and {attr!r}; found {list(df.columns)}")
    if cat is not None and cat not in df.columns:
        cat = None
    df = df[df[attr].str.strip() != ""].copy()
    df["image"] = [str((path.parent / p).resolve()) for p in df["image"]]
    return df.reset_index(drop=True), attr, cat


def cmd_directions(args) -> int:
    from embedder.oaar import label_directions, oaar_directions

    settings = settings_from_args(args)
    head, backbone = _head_and_backbone(args, settings)
    if bool(args.adjectives) == bool(args.labels):
        raise ConfigError("give exactly one of --adjectives (OAAR, text backbones) or --labels")
    if args.adjectives:
        if head is not None:
            raise ConfigError(
                "OAAR directions live in the backbone's text-image space; drop --head"
            )
        directions = oaar_directions(backbone, [a for a in args.adjectives.split(",")])
    else:
        df, attr, cat = load_label_table(args.labels, args.data_root or settings.data_root)
        emb, ok = embed_cached(backbone, df["image"].tolist(), show_progress=show_progress(args))
        df, emb = df[ok].reset_index(drop=True), emb[ok]
        if head is not None:
            emb = head.transform(emb)
        directions = label_directions(
            emb, df[attr], df[cat] if cat else None, backbone=backbone.name,
            head_id=head.head_id if head is not None else "identity", min_items=args.min_items,
            source={"labels": args.labels, "attribute": attr, "category": cat, "n_items": len(df)},
        )  # fmt: skip
    out = directions.save(args.out)
    print(
        f"saved {len(directions.names)} {directions.kind} directions to {out}: {directions.names}"
    )
    return 0


# -- parsers ---------------------------------------------------------------------------------


def _common(p, *, head: bool = True) -> None:
    p.add_argument("--groups", required=True,
                   help=f"group source: {', '.join(GROUP_SOURCES)} or a CSV with image,group")  # fmt: skip
    p.add_argument("--backbone", help="backbone name (default: the head's, else the setting)")
    if head:
        p.add_argument("--head", help="a trained SAME head folder")
    p.add_argument("--data-root", help="folder holding ikea/, hm/, clothing/ (default: setting)")
    p.add_argument(
        "--max-per-group", type=int, default=64, help="cap on images per group (0 = none)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--aggregate", default="mean", help="mean, max or mean-top-K")


def register(subparsers) -> None:
    same = subparsers.add_parser("same", help="train and evaluate the SAME style head (seed 001)")
    sub = same.add_subparsers(dest="same_command", metavar="ACTION", required=True)

    t = sub.add_parser("train", help="train a SAME head on (image, group) data")
    _common(t, head=False)
    t.add_argument("--out", required=True, help="folder for head.safetensors + head.json")
    t.add_argument("--val-fraction", type=float, default=0.15)
    t.add_argument("--test-fraction", type=float, default=0.2)
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--patience", type=int, default=5)
    t.add_argument("--steps-per-epoch", type=int, default=50)
    t.add_argument("--groups-per-batch", type=int, default=32)
    t.add_argument("--per-group", type=int, default=4)
    t.add_argument("--dim-out", type=int, default=128)
    t.add_argument("--hidden", default="512,512,512")
    t.add_argument("--margin", type=float, default=0.2)
    t.add_argument("--mining", default="semi-hard", choices=["semi-hard", "hard", "all"])
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--residual", action="store_true", help="output = input + learned correction")
    t.add_argument("--threads", type=int, default=1,
                   help="torch threads for training (1: the MLP is too small to gain from more)")  # fmt: skip
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="creator-lookalike HitRate@K, backbone vs backbone+SAME")
    _common(e)
    e.add_argument("--split", default="test", choices=["test", "all"],
                   help="test: the groups the head's training held out; all: every group")  # fmt: skip
    e.add_argument("--ks", default=",".join(map(str, DEFAULT_KS)))
    e.set_defaults(func=cmd_eval)

    look = subparsers.add_parser("lookalikes", help="the groups most similar to a group")
    _common(look)
    look.add_argument("--group", required=True, help="the query group id")
    look.add_argument("-k", "--k", type=int, default=10)
    look.add_argument("--json", action="store_true")
    look.set_defaults(func=cmd_lookalikes)

    d = subparsers.add_parser("directions", help="style directions (OAAR or label-derived)")
    dsub = d.add_subparsers(dest="directions_command", metavar="ACTION", required=True)
    b = dsub.add_parser("build", help="build a direction set folder")
    b.add_argument("--backbone")
    b.add_argument("--head", help="build label directions in this SAME head's space")
    b.add_argument("--adjectives", help="comma-separated adjectives (OAAR; needs a clip backbone)")
    b.add_argument("--labels", help=f"label source: {', '.join(LABEL_SOURCES)} or a CSV "
                                    "(image, attribute[, category])")  # fmt: skip
    b.add_argument("--data-root")
    b.add_argument("--min-items", type=int, default=3)
    b.add_argument("--out", required=True)
    b.set_defaults(func=cmd_directions)
