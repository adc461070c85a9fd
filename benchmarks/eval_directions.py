"""Label-derived style directions: ranking AUC on held-out labelled items, and top-image grids.

No CLIP weights exist on this machine, so OAAR text directions cannot be measured here; the
label directions (embedder.oaar.label_directions) are built on 70 % of the labelled items
and each attribute value ranks the other 30 %: AUC of "has the value" vs "has not".
H&M values are ranked within product types too (the direction is meant to be object-agnostic).

    .venv/bin/python benchmarks/eval_directions.py --backbone yolo
    .venv/bin/python benchmarks/eval_directions.py --backbone yolo --head artifacts/same-res/head-...

Writes artifacts/directions/results.json and grid-<source>.png (top held-out images per value).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedder.factory import (
    create_backbone,  # noqa: E402
    load_head,  # noqa: E402
)
from embedder.head import Embedder  # noqa: E402
from embedder.oaar import label_directions, ranking_auc  # noqa: E402
from shopthelook.commands.same import load_label_table  # noqa: E402
from shopthelook.core.config import REPO_ROOT, Settings, apply_threads  # noqa: E402
from shopthelook.core.images import load_image  # noqa: E402
from shopthelook.lookalikes import embed_cached  # noqa: E402


def evaluate(source, backbone, head, args, settings):
    df, attr, cat = load_label_table(source, settings.data_root)
    if args.max_items and len(df) > args.max_items:
        df = df.sample(args.max_items, random_state=args.seed).reset_index(drop=True)
    emb, ok = embed_cached(backbone, df["image"].tolist(), show_progress=True)
    df, emb = df[ok].reset_index(drop=True), emb[ok]
    if head is not None:
        emb = head.transform(emb)
    rng = np.random.default_rng(args.seed)
    test = rng.random(len(df)) < 0.3
    cats = df[cat].to_numpy() if cat else None
    d = label_directions(emb[~test], df[attr].to_numpy()[~test], None if cats is None else cats[~test],
                         backbone=backbone.name, head_id=head.head_id if head else "identity",
                         min_items=args.min_items)  # fmt: skip
    attrs = df[attr].to_numpy()
    out = {"items": len(df), "test_items": int(test.sum()), "values": {}}
    for name in d.names:
        scores = d.score(emb[test], name)
        positive = attrs[test] == name
        if positive.sum() < 3 or (~positive).sum() < 3:
            continue
        row = {"n_test": int(positive.sum()), "auc": round(ranking_auc(scores, positive), 4)}
        if cats is not None:  # within product types: the attribute, not the object, must rank
            per = []
            for c in np.unique(cats[test]):
                m = cats[test] == c
                if 3 <= positive[m].sum() <= m.sum() - 3:
                    per.append(ranking_auc(scores[m], positive[m]))
            row["auc_within_category"] = round(float(np.mean(per)), 4) if per else None
        out["values"][name] = row
    aucs = [v["auc"] for v in out["values"].values()]
    out["mean_auc"] = round(float(np.mean(aucs)), 4)
    grid(
        d,
        emb[test],
        df["image"].to_numpy()[test],
        attrs[test],
        Path(args.out) / f"grid-{source}.png",
    )
    return out


def grid(directions, emb, images, labels, path, per_row=6, rows=4):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = directions.names[:rows]
    fig, axes = plt.subplots(
        len(names), per_row, figsize=(per_row * 1.6, len(names) * 1.8), squeeze=False
    )
    for r, name in enumerate(names):
        top = np.argsort(-directions.score(emb, name))[:per_row]
        for c, i in enumerate(top):
            ax = axes[r][c]
            img = load_image(images[i])
            img.thumbnail((160, 160))
            ax.imshow(img)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(labels[i][:14], fontsize=7, color="green" if labels[i] == name else "red")
            if c == 0:
                ax.set_ylabel(name[:16], fontsize=8)
    fig.suptitle(
        f"top held-out images per direction ({directions.backbone}); title = true label", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--backbone", default="yolo")
    p.add_argument("--head")
    p.add_argument("--sources", default="furniture-styles,hm-colour-value")
    p.add_argument("--max-items", type=int, default=1500)
    p.add_argument("--min-items", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(REPO_ROOT / "artifacts" / "directions"))
    args = p.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    settings = Settings()
    backbone = create_backbone(args.backbone, settings)
    head = load_head(args.head) if args.head else None
    if head is not None:
        Embedder(backbone, head)
    apply_threads(2)
    results = {}
    for source in args.sources.split(","):
        results[source] = evaluate(source, backbone, head, args, settings)
        print(
            f"\n{source}: mean AUC {results[source]['mean_auc']} over {len(results[source]['values'])} values"
        )
        for name, row in results[source]["values"].items():
            print(f"  {name:<24} {row}")
    (Path(args.out) / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
