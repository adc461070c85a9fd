"""`shopthelook ranker train|eval|import-hm` and `shopthelook events import-hm|export|stats`."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from shopthelook.commands import settings_from_args, show_progress
from shopthelook.commands.scale import add_scheduler_arguments, fit_on_cluster
from shopthelook.core.errors import ShopTheLookError

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("ranker", help="train, evaluate and inspect the personalised re-ranker")
    rsub = p.add_subparsers(dest="ranker_command", metavar="ACTION", required=True)

    t = rsub.add_parser(
        "train", help="train on the events store; replace the live model only if better"
    )
    _common(t)
    t.add_argument(
        "--out", required=True, help="the live model folder (kept if the new model is worse)"
    )
    t.add_argument("--candidates", type=int, default=200, help="FAISS candidates per query (200)")
    t.add_argument(
        "--cutoff", help="test period start (ISO date); default: the last 25%% of engagements"
    )
    t.add_argument("--max-queries", type=int, default=4000, help="cap on training queries (4000)")
    t.add_argument("--attractiveness-cache", help="Parquet cache of product photo statistics")
    t.add_argument(
        "--same-head",
        help="folder of a SAME head on the catalog's backbone: adds the SAME-space similarity",
    )
    t.add_argument("--windows", type=int, default=4, help="training windows before the cut-off")
    t.add_argument(
        "--window-days",
        type=int,
        help="rolling windows of N days instead: profiles and statistics are recomputed every "
        "N days, in training and test (as a live system refreshing them would see them)",
    )
    t.add_argument(
        "--train-candidates",
        type=int,
        help="FAISS candidates per training query when deeper than --candidates",
    )
    t.add_argument("--valid-windows", type=int, default=1, help="last windows for early stopping")
    t.add_argument(
        "--refit",
        action="store_true",
        help="refit on all windows with the early-stopped tree count",
    )
    t.add_argument(
        "--prior",
        default="style_max",
        help="boost the trees from this feature's order: style_max (profile-max similarity, "
        "the default), visual_sim, ... or 'none' to start from zero",
    )
    t.add_argument(
        "--prior-strength",
        type=float,
        default=0.5,
        help="score units per typical within-query step of the prior feature (0.5)",
    )
    t.add_argument(
        "--cv-folds",
        type=int,
        default=0,
        help="choose the number of trees on N successive validation blocks of --valid-windows "
        "windows each, then train on everything (0: early stopping on the last block)",
    )
    t.add_argument("--force", action="store_true", help="replace the live model even if worse")
    add_scheduler_arguments(t)
    t.set_defaults(func=cmd_train)

    e = rsub.add_parser("eval", help="print the evaluation table of a model on its test period")
    _common(e)
    e.add_argument("--model", required=True, help="model folder")
    e.add_argument("--candidates", type=int, default=200)
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.set_defaults(func=cmd_eval)

    _import_parser(rsub, "import-hm")

    ev = sub.add_parser("events", help="the engagement events store")
    esub = ev.add_subparsers(dest="events_command", metavar="ACTION", required=True)
    _import_parser(esub, "import-hm")
    x = esub.add_parser("export", help="write the events to a Parquet file")
    x.add_argument("--events", required=True, help="events database: a file path or a database URL")
    x.add_argument("--out", required=True, help="Parquet file to write")
    x.set_defaults(func=cmd_export)
    s = esub.add_parser("stats", help="count the events by type")
    s.add_argument("--events", required=True)
    s.set_defaults(func=cmd_stats)


def _common(p) -> None:
    p.add_argument("--events", required=True, help="events database: a file path or a database URL")
    p.add_argument("--catalog", required=True, help="catalog folder the candidates come from")


def _import_parser(sub, name: str) -> None:
    i = sub.add_parser(name, help="import H&M transactions.csv as purchase events")
    i.add_argument("--events", required=True, help="events database: a file path or a database URL")
    i.add_argument(
        "--transactions", help="transactions.csv (default: <data root>/hm/transactions.csv)"
    )
    i.add_argument("--articles", help="articles.csv, to skip unknown articles (default: beside it)")
    i.set_defaults(func=cmd_import_hm)


def cmd_import_hm(args) -> int:
    from ranker.events import EventStore
    from ranker.importers import import_hm_transactions
    from shopthelook.core.taxonomy import load_taxonomy

    settings = settings_from_args(args)
    transactions = Path(args.transactions) if args.transactions else None
    if transactions is None:
        if settings.data_root is None:
            raise ShopTheLookError("no data root: give --transactions PATH")
        transactions = Path(settings.data_root) / "hm" / "transactions.csv"
    articles = Path(args.articles) if args.articles else transactions.with_name("articles.csv")
    with EventStore(args.events) as store:
        stored, skipped = import_hm_transactions(
            store,
            transactions,
            articles=articles if articles.exists() else None,
            taxonomy=load_taxonomy(settings.taxonomy),
        )
        total = store.count()
    print(f"{stored} purchases stored, {skipped} skipped; the store holds {total} events")
    return 0


def cmd_export(args) -> int:
    from ranker.events import EventStore

    with EventStore(args.events) as store:
        n = store.export_parquet(args.out)
    print(f"{n} events written to {args.out}")
    return 0


def cmd_stats(args) -> int:
    from ranker.events import EVENT_TYPES, EventStore

    with EventStore(args.events) as store:
        counts = {kind: store.count(event_type=kind) for kind in EVENT_TYPES}
        frame = store.to_frame()
        skipped = store.last_out_of_range
    print(
        json.dumps(
            {
                "events": int(sum(counts.values())),
                **counts,
                # rows with a time outside the accepted window (from before it was enforced)
                "skipped_out_of_range": skipped,
                "users": int(frame["user_id"].nunique()),
                "products": int(frame["product_id"].nunique()),
                "first": str(frame["ts"].min()) if len(frame) else None,
                "last": str(frame["ts"].max()) if len(frame) else None,
            },
            indent=1,
        )
    )
    return 0


def _load_inputs(args):
    from catalog import Catalog
    from ranker.events import EventStore
    from ranker.profile import ProductSpace

    catalog = Catalog.load(args.catalog)
    with EventStore(args.events) as store:
        events = store.to_frame()
        if store.last_out_of_range:
            print(
                f"note: {store.last_out_of_range} stored event(s) with a time outside the "
                "accepted window were left out",
                file=sys.stderr,
            )
    return catalog, ProductSpace.from_catalog(catalog), events


def _catalog_prices(catalog):
    products = catalog.products
    if "price" not in products.columns:
        return None
    return products.set_index(products["product_id"].astype(str))["price"]


def cmd_train(args) -> int:
    from ranker.attractiveness import compute_attractiveness
    from ranker.dataset import clean_events, time_split
    from ranker.features import FeatureBuilder
    from ranker.train import TrainConfig, config_dict, save_model
    from ranker.trainer import format_table, train_from_events

    catalog, space, events = _load_inputs(args)
    events = clean_events(events, space)
    cache = args.attractiveness_cache or str(Path(args.catalog) / "attractiveness.parquet")
    try:
        attractiveness = compute_attractiveness(
            catalog.products, cache=cache, show_progress=show_progress(args)
        )
    except OSError:  # a read-only catalog folder: compute without caching
        attractiveness = compute_attractiveness(catalog.products, show_progress=show_progress(args))
    config = TrainConfig(
        n_candidates=args.candidates,
        max_train_queries=args.max_queries,
        windows=args.windows,
        window_days=args.window_days,
        train_candidates=args.train_candidates,
        prior_feature=None if args.prior == "none" else args.prior,
        prior_strength=args.prior_strength,
        cv_folds=args.cv_folds,
        valid_windows=args.valid_windows,
        refit=args.refit,
    )
    split = time_split(
        events, cutoff=args.cutoff, windows=args.windows, window_days=args.window_days
    )
    style_head = _same_head(args.same_head, catalog)
    with fit_on_cluster(args) as fit_fn:
        result = train_from_events(
            events,
            space,
            config=config,
            split=split,
            attractiveness=attractiveness,
            texts=FeatureBuilder.product_texts(catalog.products),
            catalog_prices=_catalog_prices(catalog),
            products=catalog.products,
            style_head=style_head,
            show_progress=show_progress(args),
            fit_fn=fit_fn,
        )
    print(format_table(result.table))
    print(
        f"trained on {result.info['train_queries']} queries in {result.info['train_seconds']} s "
        f"({result.info['best_iteration']} trees)"
    )
    out = Path(args.out)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    staging = out.with_name(f"{out.name}.new-{stamp}")
    new_score = result.table.get("lightgbm", {}).get("ndcg@10", 0.0)
    old_score = _live_score(out, result, space)
    metrics = {"test": result.table, "live_model_ndcg@10": old_score, "train": result.info}
    catalog_info = {
        "path": str(Path(args.catalog).resolve()),
        "backbone": catalog.backbone,
        "head": catalog.head,
        "dim": catalog.dim,
    }
    save_model(
        staging,
        result.booster,
        result.final_builder,
        metrics=metrics,
        train_info=result.info,
        catalog_info=catalog_info,
        extra={
            "events": str(args.events),
            "config": config_dict(config),
            "split": {
                "cutoff": str(split.cutoff),
                "end": str(split.end),
                "window_days": args.window_days,
            },
            "same_head": str(Path(args.same_head).resolve()) if args.same_head else "",
        },
    )
    if old_score is not None and new_score < old_score and not args.force:
        print(
            f"kept the live model {out}: its nDCG@10 {old_score:.4f} beats the new one's "
            f"{new_score:.4f} on the same test queries; the new model is in {staging}"
        )
        return 0
    if out.exists():
        backup = out.with_name(f"{out.name}.prev-{stamp}")
        out.rename(backup)
        staging.rename(out)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        staging.rename(out)
    verdict = "no live model before" if old_score is None else f"live model had {old_score:.4f}"
    print(f"new model (nDCG@10 {new_score:.4f}; {verdict}) is live in {out}")
    return 0


def _same_head(folder: str | None, catalog):
    if not folder:
        return None
    from embedder.factory import load_head

    head = load_head(folder)
    if head.dim_in != catalog.dim:
        raise ShopTheLookError(
            f"SAME head {folder} takes {head.dim_in}-d input but catalog {catalog.path} holds "
            f"{catalog.dim}-d vectors; train the head on the catalog's backbone"
        )
    return head


def _live_score(out: Path, result, space) -> float | None:
    """The live model's nDCG@10 on the new model's test queries; None if there is none usable."""
    from ranker.lgbm import LightGBMRanker, RankerModelError
    from ranker.metrics import mean_metrics
    from ranker.prior import with_prior
    from ranker.train import split_scores

    if not out.exists():
        return None
    try:
        live = LightGBMRanker.load(out, catalog=space.catalog)
    except RankerModelError as exc:
        log.warning("the live model cannot be compared (%s); it will be replaced", exc)
        return None
    X = _with_vocab(result, live.manifest.get("vocab", {}))
    scores = split_scores(with_prior(live.booster.predict(X), X, live.prior), result.test_groups)
    return mean_metrics([g.labels for g in result.test_groups], scores)["ndcg@10"]


def _with_vocab(result, vocab: dict):
    """The test features re-coded with another model's category vocabulary."""
    import numpy as np

    from ranker.features import CATEGORICAL, FEATURES

    X = np.array(result.test_X, copy=True)
    mine = result.final_builder.vocab
    for name in CATEGORICAL:
        col = FEATURES.index(name)
        theirs = {v: i for i, v in enumerate(vocab.get(name, []))}
        values = mine.get(name, [])
        X[:, col] = [
            np.nan if np.isnan(c) else theirs.get(values[int(c)], np.nan) for c in X[:, col]
        ]
    return X


def cmd_eval(args) -> int:
    import pandas as pd

    from ranker.attractiveness import ATTRACTIVENESS
    from ranker.dataset import TimeSplit, clean_events, window_starts
    from ranker.features import FeatureBuilder
    from ranker.lgbm import LightGBMRanker
    from ranker.train import builder_for, predict
    from ranker.trainer import evaluation_table, format_table, test_matrix

    catalog, space, events = _load_inputs(args)
    events = clean_events(events, space)
    model = LightGBMRanker.load(args.model, catalog=catalog)
    split = model.manifest.get("split", {})
    if not split.get("cutoff"):
        raise ShopTheLookError(f"ranker model {args.model}: its manifest records no test cut-off")
    cutoff, end = pd.Timestamp(split["cutoff"]), pd.Timestamp(split["end"])
    end = max(end, events["ts"].max() + pd.Timedelta(seconds=1))
    days = split.get("window_days")
    test_points = window_starts(cutoff, end, int(days)) if days else []
    stats = model._stats
    texts = FeatureBuilder.product_texts(catalog.products)

    def make_builder(snap):
        return builder_for(
            snap,
            space,
            attractiveness=stats.reindex(columns=list(ATTRACTIVENESS)),
            texts=texts,
            vocab=model.manifest.get("vocab", {}),
            products=catalog.products,
            style_head=model.style_head,
        )

    groups, X = test_matrix(
        events,
        space,
        TimeSplit([], cutoff, cutoff, end, test_points),
        args.candidates,
        make_builder,
        catalog_prices=_catalog_prices(catalog),
        show_progress=show_progress(args),
    )
    if not groups:
        raise ShopTheLookError(f"no test queries after {cutoff}: log more events")
    table = evaluation_table(groups, X, {"lightgbm": predict(model.booster, X, model.prior)})
    print(json.dumps(table, indent=1) if args.json else format_table(table))
    return 0
