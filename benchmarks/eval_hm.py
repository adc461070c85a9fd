"""H&M personalisation evaluation (the Visual Styles RecSys setting).

For every (customer, day, category) of purchases after the cut-off by a customer who bought
before it, the query is the customer's history before that day plus that category (profiles
and statistics recomputed daily, ``--window-days 1``; ``--window-days 0`` freezes them at the
cut-off); the candidates are the category's top 200 by FAISS similarity to the profile; the
label is what was bought. Methods: popularity, visual-only (similarity to the customer's last purchase),
profile max / mean / mean-top-K (seed 004) and the LightGBM lambdarank ranker, trained on
earlier daily windows (candidates from FAISS too, 400 deep), boosted from the profile-max
order, its number of trees chosen on three successive 30-day validation blocks.

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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from catalog import Catalog  # noqa: E402
from ranker.attractiveness import compute_attractiveness  # noqa: E402
from ranker.dataset import clean_events, time_split  # noqa: E402
from ranker.events import EventStore  # noqa: E402
from ranker.features import FeatureBuilder  # noqa: E402
from ranker.importers import import_hm_transactions  # noqa: E402
from ranker.plots import plot_importance, plot_metrics  # noqa: E402
from ranker.profile import ProductSpace  # noqa: E402
from ranker.train import TrainConfig, save_model  # noqa: E402
from ranker.trainer import format_table, train_from_events  # noqa: E402
from shopthelook.core.config import default_shared_root, load_settings  # noqa: E402
from shopthelook.core.taxonomy import load_taxonomy  # noqa: E402


def paired_bootstrap(result, baseline: str, rounds: int = 2000) -> tuple[float, float, float]:
    """Mean per-query nDCG@10 gain of the ranker over a baseline, with a 95% interval."""
    from ranker.metrics import group_metrics
    from ranker.train import split_scores
    from ranker.trainer import baseline_scores

    groups = result.test_groups
    ours = split_scores(result.predict(result.test_X), groups)
    theirs = split_scores(baseline_scores(result.test_X, baseline), groups)
    gain = np.asarray(
        [
            group_metrics(g.labels, a)["ndcg@10"] - group_metrics(g.labels, b)["ndcg@10"]
            for g, a, b in zip(groups, ours, theirs, strict=True)
        ]
    )
    rng = np.random.default_rng(0)
    means = gain[rng.integers(0, len(gain), (rounds, len(gain)))].mean(axis=1)
    return float(gain.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--catalog", required=True, help="H&M catalog folder (Catalog.build over articles.csv)"
    )
    ap.add_argument(
        "--events",
        default=str(ROOT / "artifacts" / "hm-events.db"),
        help="events store; H&M transactions are imported into it when empty",
    )
    ap.add_argument("--cutoff", default="2020-08-01", help="test period start (default 2020-08-01)")
    ap.add_argument("--candidates", type=int, default=200)
    ap.add_argument("--max-queries", type=int, default=4000)
    ap.add_argument(
        "--window-days",
        type=int,
        default=1,
        help="recompute profiles and statistics every N days (1); 0: 12 quantile windows, "
        "test features frozen at the cut-off",
    )
    ap.add_argument(
        "--train-candidates",
        type=int,
        default=400,
        help="candidates per training query (400: more purchases within reach to learn from)",
    )
    ap.add_argument(
        "--prior",
        default="style_max",
        help="boost from this feature's order (style_max: profile max); 'none' for zero",
    )
    ap.add_argument("--prior-strength", type=float, default=0.5)
    ap.add_argument(
        "--cv-folds",
        type=int,
        default=3,
        help="choose the number of trees on this many successive validation blocks (3); "
        "0: early stopping on the last block",
    )
    ap.add_argument(
        "--valid-windows", type=int, help="windows for early stopping (the last 30 days)"
    )
    ap.add_argument("--no-refit", action="store_true", help="keep the early-stopped model")
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
            store,
            hm / "transactions.csv",
            articles=hm / "articles.csv",
            taxonomy=load_taxonomy(load_settings().taxonomy),
        )
        print(f"imported {stored} purchases ({skipped} skipped) into {args.events}")
    events = store.to_frame()
    store.close()

    catalog = Catalog.load(args.catalog)
    space = ProductSpace.from_catalog(catalog)
    events = clean_events(events, space)
    attractiveness = compute_attractiveness(
        catalog.products, cache=out / "cache" / "hm-attractiveness.parquet", show_progress=True
    )
    window_days = args.window_days or None
    valid = args.valid_windows or (max(1, 30 // window_days) if window_days else 3)
    config = TrainConfig(
        n_candidates=args.candidates,
        train_candidates=args.train_candidates,
        window_days=window_days,
        prior_feature=None if args.prior == "none" else args.prior,
        prior_strength=args.prior_strength,
        cv_folds=args.cv_folds,
        max_train_queries=args.max_queries,
        windows=args.windows,
        valid_windows=valid,
        refit=not args.no_refit,
    )
    split = time_split(events, cutoff=args.cutoff, windows=args.windows, window_days=window_days)
    started = time.perf_counter()
    result = train_from_events(
        events,
        space,
        config=config,
        split=split,
        attractiveness=attractiveness,
        texts=FeatureBuilder.product_texts(catalog.products),
        products=catalog.products,
        show_progress=True,
    )
    total = time.perf_counter() - started
    name = Path(args.catalog).name
    table = result.table
    # the issue's baselines are the visual/profile/popularity ones; history-attributes (not
    # visual) is reported beside them as a stricter comparison
    issue = [m for m in table if m not in ("lightgbm", "history-attributes")]
    best = max(issue, key=lambda m: table[m]["ndcg@10"])
    ratio = table["lightgbm"]["ndcg@10"] / max(table[best]["ndcg@10"], 1e-9)
    strict = table["lightgbm"]["ndcg@10"] / max(table["history-attributes"]["ndcg@10"], 1e-9)
    ci = paired_bootstrap(result, best)
    ci_strict = paired_bootstrap(result, "history-attributes")
    coverage = sum(bool((g.labels > 0).any()) for g in result.test_groups) / max(
        1, len(result.test_groups)
    )
    print(
        f"\nH&M personalisation, catalog {name} ({catalog.backbone}, {catalog.dim}-d), "
        f"cut-off {split.cutoff.date()}"
    )
    print(format_table(table))
    print(
        f"ranker / best single visual-or-popularity baseline ({best}) on nDCG@10: {ratio:.2f}x "
        f"(goal 1.3x); ranker / history-attributes: {strict:.2f}x"
    )
    print(
        f"nDCG@10 ranker - {best}: {ci[0]:+.4f} (95% bootstrap interval {ci[1]:+.4f} .. {ci[2]:+.4f})"
    )
    print(
        f"nDCG@10 ranker - history-attributes: {ci_strict[0]:+.4f} "
        f"(95% interval {ci_strict[1]:+.4f} .. {ci_strict[2]:+.4f})"
    )
    print(
        f"bought item among the {args.candidates} FAISS candidates: {coverage:.1%} of test queries"
    )
    print(
        f"train: {result.info['train_queries']} queries, {result.info['train_rows']} rows, "
        f"{result.info['train_seconds']} s LightGBM ({result.info['best_iteration']} trees); "
        f"features + training + evaluation {total:.0f} s"
    )
    report = {
        "catalog": name,
        "backbone": catalog.backbone,
        "cutoff": str(split.cutoff),
        "table": table,
        "best_baseline": best,
        "ratio_ndcg10": ratio,
        "ndcg10_gain_ci95": ci,
        "ratio_vs_history_attributes": strict,
        "gain_vs_history_attributes_ci95": ci_strict,
        "candidate_coverage": coverage,
        "train": {k: v for k, v in result.info.items() if k != "params"},
        "total_seconds": total,
    }
    (out / f"eval_hm_{name}.json").write_text(json.dumps(report, indent=1, default=str))
    plot_metrics(
        table,
        f"H&M personalisation ({name}), test after {split.cutoff.date()}",
        out / f"eval_hm_{name}_metrics.png",
    )
    plot_importance(
        result.booster,
        out / f"eval_hm_{name}_importance.png",
        f"LightGBM feature importance, H&M ({name})",
    )
    save_model(
        out / f"ranker-hm-{name}",
        result.booster,
        result.final_builder,
        metrics=table,
        train_info=result.info,
        catalog_info={
            "path": str(Path(args.catalog).resolve()),
            "backbone": catalog.backbone,
            "head": catalog.head,
            "dim": catalog.dim,
        },
        extra={
            "split": {
                "cutoff": str(split.cutoff),
                "end": str(split.end),
                "window_days": window_days,
            },
            "events": str(args.events),
        },
    )
    print(
        f"wrote {out}/eval_hm_{name}.json, _metrics.png, _importance.png and model ranker-hm-{name}/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
