"""Creator-lookalike HitRate@K (seed 001 section 3): backbone vs backbone+SAME, held-out groups.

For each group source (clothing contributors by sender_id, IKEA rooms by the products shown
in them), the groups are split train / validation / test with a fixed seed; a SAME head is
trained on the train groups (early stopping on validation HitRate@10) and evaluated on the
test groups only: each test group's images are split into two disjoint halves, the query is
one half's representation and the candidates are the other halves of all test groups.

    .venv/bin/python benchmarks/eval_same.py --backbone yolo
    .venv/bin/python benchmarks/eval_same.py --backbone yolo --sources clothing --seeds 0,1,2

Writes artifacts/same/results.json, artifacts/same/hitrate.png (like the paper's fig. 3a) and
one head folder per source under artifacts/same/. Embeddings are cached in artifacts/cache.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedder.factory import create_backbone  # noqa: E402
from embedder.train_same import TrainConfig, peak_rss_mb, train_same  # noqa: E402
from shopthelook.commands.same import group_data  # noqa: E402
from shopthelook.core.config import REPO_ROOT, Settings, apply_threads  # noqa: E402
from shopthelook.core.groups import split_groups  # noqa: E402
from shopthelook.lookalikes import Aggregate, creator_hit_rate  # noqa: E402

CURVE_KS = (1, 2, 3, 5, 7, 10, 15, 20, 30, 50)
REPORT_KS = (1, 5, 10, 50)


def run_source(source, backbone, args, seed):
    data = group_data(source, backbone, max_per_group=args.max_per_group, seed=0, progress=True)
    labels = data.table["group"].to_numpy()
    train_ids, val_ids, test_ids = split_groups(labels, val_fraction=args.val_fraction,
                                                test_fraction=args.test_fraction, seed=seed)  # fmt: skip
    tr, va, te = (np.isin(labels, ids) for ids in (train_ids, val_ids, test_ids))

    def validate(head):
        return creator_hit_rate(
            head.transform(data.embeddings[va]), labels[va], ks=(10,), seed=seed
        )[10]

    cfg = TrainConfig(dim_out=args.dim_out, hidden=(args.hidden,) * 3, margin=args.margin,
                      residual=args.residual,
                      mining=args.mining, max_epochs=args.epochs, patience=args.patience,
                      steps_per_epoch=args.steps, groups_per_batch=args.groups_per_batch,
                      per_group=args.per_group, lr=args.lr, input_noise=args.input_noise,
                      seed=seed, threads=1)  # fmt: skip
    result = train_same(data.embeddings[tr], labels[tr], backbone=backbone.name, config=cfg,
                        validate=validate, show_progress=True,
                        trained_on={"groups": source, "split": {"seed": seed,
                                    "val_fraction": args.val_fraction,
                                    "test_fraction": args.test_fraction,
                                    "max_per_group": args.max_per_group}})  # fmt: skip
    out = {"source": source, "seed": seed, "n_images": len(labels),
           "groups": {"train": len(train_ids), "val": len(val_ids), "test": len(test_ids)},
           "train_seconds": round(result.seconds, 1), "best_epoch": result.best_epoch,
           "epochs_run": len(result.history), "best_val_hr10": result.best_val,
           "loss_first_last": [result.history[0]["loss"], result.history[-1]["loss"]]}  # fmt: skip
    same_emb = result.head.transform(data.embeddings[te])
    for agg in ("mean", "max", "mean-top-3"):
        a = Aggregate.parse(agg)
        out[f"backbone/{agg}"] = creator_hit_rate(
            data.embeddings[te], labels[te], ks=CURVE_KS, aggregate=a, seed=seed
        )
        out[f"same/{agg}"] = creator_hit_rate(
            same_emb, labels[te], ks=CURVE_KS, aggregate=a, seed=seed
        )
    head_dir = (
        Path(args.out)
        / f"head-{source}-{backbone.name.replace(':', '_').replace('/', '_')}-s{seed}"
    )
    result.head.config.metrics["test_hit_rate_backbone"] = out["backbone/mean"]
    result.head.config.metrics["test_hit_rate_same"] = out["same/mean"]
    result.head.save(head_dir)
    out["head"] = str(head_dir)
    return out


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = sorted({r["source"] for r in results})
    fig, axes = plt.subplots(1, len(sources), figsize=(5.5 * len(sources), 4), squeeze=False)
    for ax, source in zip(axes[0], sources, strict=True):
        rows = [r for r in results if r["source"] == source]
        for key, style, label in (
            ("backbone/mean", "--o", "backbone"),
            ("same/mean", "-s", "backbone+SAME"),
        ):
            curve = np.mean([[r[key][k] for k in CURVE_KS] for r in rows], axis=0)
            ax.plot(CURVE_KS, curve, style, label=label)
        n_test = rows[0]["groups"]["test"]
        chance = [min(1.0, k / n_test) for k in CURVE_KS]
        ax.plot(CURVE_KS, chance, ":", color="grey", label="random")
        ax.set(title=f"{source}: {n_test} held-out groups, {len(rows)} seed(s)", xlabel="K",
               ylabel="HitRate@K", ylim=(0, 1.02), xscale="log")  # fmt: skip
        ax.set_xticks(CURVE_KS, [str(k) for k in CURVE_KS])
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--backbone", default="yolo")
    p.add_argument("--sources", default="clothing,ikea-rooms")
    p.add_argument("--seeds", default="0")
    p.add_argument("--out", default=str(REPO_ROOT / "artifacts" / "same"))
    p.add_argument("--max-per-group", type=int, default=64)
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--test-fraction", type=float, default=0.25)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--groups-per-batch", type=int, default=32)
    p.add_argument("--per-group", type=int, default=4)
    p.add_argument("--dim-out", type=int, default=128)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--margin", type=float, default=0.2)
    p.add_argument("--mining", default="semi-hard")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--input-noise", type=float, default=0.0)
    p.add_argument("--residual", action="store_true")
    args = p.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    settings = Settings()
    backbone = create_backbone(args.backbone, settings)
    apply_threads(2)
    results = []
    start = time.perf_counter()
    for source in args.sources.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            r = run_source(source, backbone, args, seed)
            results.append(r)
            print(f"\n{source} seed {seed}: groups {r['groups']}, {r['train_seconds']} s, "
                  f"best epoch {r['best_epoch']}/{r['epochs_run']}")  # fmt: skip
            for key in ("backbone/mean", "same/mean", "backbone/max", "same/max",
                        "backbone/mean-top-3", "same/mean-top-3"):  # fmt: skip
                print(f"  {key:<20}" + "  ".join(f"HR@{k}={r[key][k]:.3f}" for k in REPORT_KS))
    summary = {"backbone": backbone.name, "args": vars(args), "results": results,
               "total_seconds": round(time.perf_counter() - start, 1),
               "peak_rss_mb": round(peak_rss_mb(), 1)}  # fmt: skip
    (Path(args.out) / "results.json").write_text(json.dumps(summary, indent=2, default=str))
    plot(results, Path(args.out) / "hitrate.png")
    print(f"\npeak RSS {summary['peak_rss_mb']} MB, total {summary['total_seconds']} s; "
          f"wrote {args.out}/results.json and hitrate.png")  # fmt: skip


if __name__ == "__main__":
    main()
