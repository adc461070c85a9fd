"""H&M personalisation evaluation (the Visual Styles RecSys setting).

For every (customer, day, category) of purchases after the cut-off by a customer who bought
before it, the query is the customer's history before the cut-off plus that category; the
candidates are the category's top 200 by FAISS similarity to the profile; the label is what
was bought. Methods: popularity, visual-only (similarity to the customer's last purchase),
profile max / mean / mean-top-K (seed 004) and the LightGBM lambdarank ranker, trained on
earlier time windows (candidates from FAISS too).

    .venv/bin/python benchmarks/eval_hm.py --catalog catalogs/hm-hvf
    .venv/bin/python benchmarks/eval_hm.py --catalog catalogs/hm-yolo

Writes artifacts/eval_hm_<catalog>.json, artifacts/eval_hm_<catalog>_metrics.png and
artifacts/eval_hm_<catalog>_importance.png.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ranker.attractiveness import compute_attractiveness  # noqa: E402
from ranker.dataset import clean_events, time_split  # noqa: E402
from ranker.events import EventStore  # noqa: E402
from ranker.features import FEATURES, FeatureBuilder  # noqa: E402
from ranker.importers import import_hm_transactions  # noqa: E402
from ranker.profile import ProductSpace  # noqa: E402
from ranker.train import TrainConfig, save_model  # noqa: E402
from ranker.trainer import format_table, train_from_events  # noqa: E402
from shopthelook.catalog import Catalog  # noqa: E402
from shopthelook.config import default_shared_root, load_settings  # noqa: E402
from shopthelook.taxonomy import load_taxonomy  # noqa: E402


def plot_metrics(table: dict, title: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(table)
    keys = ["ndcg@10", "hr@10", "mrr"]
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(keys)
    for j, key in enumerate(keys):
        ax.bar([i + j * width for i in range(len(methods))], [table[m][key] for m in methods],
               width, label=key)
    ax.set_xticks([i + width for i in range(len(methods))], methods, rotation=20)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_importance(booster, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gain = booster.feature_importance("gain")
    order = gain.argsort()[::-1][:20][::-1]
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.barh([FEATURES[i] for i in order], gain[order])
    ax.set_xlabel("total gain")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", required=True, help="H&M catalog folder (Catalog.build over articles.csv)")
    ap.add_argument("--events", default=str(ROOT / "artifacts" / "hm-events.db"),
                    help="events store; H&M transactions are imported into it when empty")
    ap.add_argument("--cutoff", default="2020-08-01", help="test period start (default 2020-08-01)")
    ap.add_argument("--candidates", type=int, default=200)
    ap.add_argument("--max-queries", type=int, default=4000)
    ap.add_argument("--windows", type=int, default=12, help="training windows before the cut-off")
    ap.add_argument("--out", default=str(ROOT / "artifacts"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    shared = default_shared_root()
    hm = shared / "data" / "hm"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = EventStore(args.events)
    if store.count() == 0:
        stored, skipped = import_hm_transactions(
            store, hm / "transactions.csv", articles=hm / "articles.csv",
            taxonomy=load_taxonomy(load_settings().taxonomy))
        print(f"imported {stored} purchases ({skipped} skipped) into {args.events}")
    events = store.to_frame()
    store.close()

    catalog = Catalog.load(args.catalog)
    space = ProductSpace.from_catalog(catalog)
    events = clean_events(events, space)
    attractiveness = compute_attractiveness(
        catalog.products, cache=out / "cache" / "hm-attractiveness.parquet", show_progress=True)
    config = TrainConfig(n_candidates=args.candidates, max_train_queries=args.max_queries,
                         windows=args.windows)
    split = time_split(events, cutoff=args.cutoff, windows=args.windows)
    started = time.perf_counter()
    result = train_from_events(events, space, config=config, split=split,
                               attractiveness=attractiveness,
                               texts=FeatureBuilder.product_texts(catalog.products),
                               show_progress=True)
    total = time.perf_counter() - started
    name = Path(args.catalog).name
    table = result.table
    best = max((m for m in table if m != "lightgbm"), key=lambda m: table[m]["ndcg@10"])
    ratio = table["lightgbm"]["ndcg@10"] / max(table[best]["ndcg@10"], 1e-9)
    coverage = sum(bool((g.labels > 0).any()) for g in result.test_groups) / max(1, len(result.test_groups))
    print(f"\nH&M personalisation, catalog {name} ({catalog.backbone}, {catalog.dim}-d), "
          f"cut-off {split.cutoff.date()}")
    print(format_table(table))
    print(f"ranker / best single baseline ({best}) on nDCG@10: {ratio:.2f}x (goal 1.3x)")
    print(f"bought item among the {args.candidates} FAISS candidates: {coverage:.1%} of test queries")
    print(f"train: {result.info['train_queries']} queries, {result.info['train_rows']} rows, "
          f"{result.info['train_seconds']} s LightGBM ({result.info['best_iteration']} trees); "
          f"features + training + evaluation {total:.0f} s")
    report = {"catalog": name, "backbone": catalog.backbone, "cutoff": str(split.cutoff),
              "table": table, "best_baseline": best, "ratio_ndcg10": ratio,
              "candidate_coverage": coverage, "train": {k: v for k, v in result.info.items()
                                                        if k != "params"}, "total_seconds": total}
    (out / f"eval_hm_{name}.json").write_text(json.dumps(report, indent=1, default=str))
    plot_metrics(table, f"H&M personalisation ({name}), test after {split.cutoff.date()}",
                 out / f"eval_hm_{name}_metrics.png")
    plot_importance(result.booster, out / f"eval_hm_{name}_importance.png",
                    f"LightGBM feature importance, H&M ({name})")
    save_model(out / f"ranker-hm-{name}", result.booster, result.final_builder, metrics=table,
               train_info=result.info,
               catalog_info={"path": str(Path(args.catalog).resolve()), "backbone": catalog.backbone,
                             "head": catalog.head, "dim": catalog.dim},
               extra={"split": {"cutoff": str(split.cutoff), "end": str(split.end)},
                      "events": str(args.events)})
    print(f"wrote {out}/eval_hm_{name}.json, _metrics.png, _importance.png and model ranker-hm-{name}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
