"""Train and evaluate the re-ranker from an events log, end to end, with a time split.

Candidates come from FAISS (the real retrieval stage). The test period's table compares the
ranker with single-signal baselines computed on the very same candidates: popularity,
visual-only (similarity to the user's last item), the profile scores max / mean /
mean-top-K of seed 004, and the share of the user's history with the candidate's attributes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import lightgbm as lgb
import numpy as np
import pandas as pd
from tqdm import tqdm

from ranker.dataset import (
    QueryGroup,
    RankerDataError,
    TimeSplit,
    event_queries,
    snapshot,
    time_split,
)
from ranker.features import FEATURES, FeatureBuilder
from ranker.metrics import mean_metrics
from ranker.profile import ProductSpace
from ranker.train import TrainConfig, builder_for, fit, matrix, predict, split_scores

log = logging.getLogger(__name__)

#: single-feature baselines: method name -> feature column (higher is better)
BASELINES = {
    "popularity": "popularity",
    "visual-only": "visual_sim",
    "profile-max": "style_max",
    "profile-mean": "style_mean",
    "profile-mean-top-k": "style_topk",
    # not visual: how much of the user's history shares the candidate's attributes
    "history-attributes": "meta_affinity",
}


@dataclass
class TrainResult:
    booster: lgb.Booster
    #: features as of the end of the log: what serving starts from
    final_builder: FeatureBuilder
    split: TimeSplit
    info: dict
    #: method -> metrics on the test period
    table: dict[str, dict]
    test_groups: list[QueryGroup] = field(default_factory=list)
    test_X: np.ndarray | None = None


def baseline_scores(X: np.ndarray, name: str) -> np.ndarray:
    values = X[:, FEATURES.index(BASELINES[name])].astype(np.float64)
    return np.nan_to_num(values, nan=-1e9)


def evaluation_table(
    groups, X: np.ndarray, model_scores: dict[str, np.ndarray], k: int = 10
) -> dict:
    table = {}
    labels = [g.labels for g in groups]
    for name in BASELINES:
        table[name] = mean_metrics(labels, split_scores(baseline_scores(X, name), groups), k)
    for name, scores in model_scores.items():
        table[name] = mean_metrics(labels, split_scores(scores, groups), k)
    return table


def format_table(table: dict[str, dict], k: int = 10) -> str:
    lines = [f"{'method':<22}{'nDCG@' + str(k):>10}{'HR@' + str(k):>10}{'MRR':>10}{'queries':>9}"]
    for name, m in table.items():
        lines.append(
            f"{name:<22}{m[f'ndcg@{k}']:>10.4f}{m[f'hr@{k}']:>10.4f}{m['mrr']:>10.4f}{m['queries']:>9}"
        )
    return "\n".join(lines)


def train_from_events(
    events: pd.DataFrame,
    space: ProductSpace,
    *,
    config: TrainConfig | None = None,
    split: TimeSplit | None = None,
    attractiveness=None,
    texts=None,
    style_head=None,
    catalog_prices=None,
    products=None,
    show_progress: bool = False,
    fit_fn=None,
) -> TrainResult:
    config = config or TrainConfig()
    split = split or time_split(events, windows=config.windows)
    common = {
        "attractiveness": attractiveness,
        "texts": texts,
        "style_head": style_head,
        "products": products,
    }
    points = [*split.train_points, split.valid_point, split.cutoff]
    snaps, groups_by_window = {}, []
    for start, stop in tqdm(
        list(zip(points[:-1], points[1:], strict=True)), desc="windows", disable=not show_progress
    ):
        snaps[start] = snapshot(events, space, start, catalog_prices)
        groups_by_window.append(
            event_queries(events, space, snaps[start], stop, n_candidates=config.n_candidates)
        )
    snaps[split.cutoff] = snapshot(events, space, split.cutoff, catalog_prices)
    test = event_queries(
        events, space, snaps[split.cutoff], split.end, n_candidates=config.n_candidates
    )
    n_valid = max(1, min(config.valid_windows, len(groups_by_window) - 1))
    train = [g for window in groups_by_window[:-n_valid] for g in window]
    valid = [g for window in groups_by_window[-n_valid:] for g in window]
    labelled = [g for g in train if (g.labels > 0).any()]
    if config.max_train_queries and len(labelled) > config.max_train_queries:
        pick = np.random.default_rng(config.seed).choice(
            len(labelled), config.max_train_queries, replace=False
        )
        labelled = [labelled[i] for i in sorted(pick)]
    if not labelled:
        raise RankerDataError(
            "no training query has its engaged product among the FAISS candidates; "
            "more events or more candidates (--candidates) are needed"
        )
    vocab_builder = FeatureBuilder(space, snaps[split.cutoff].profiles)
    vocab_builder.fit_vocab([g.context for g in labelled])
    builders = {
        t: builder_for(s, space, vocab=vocab_builder.vocab, **common) for t, s in snaps.items()
    }
    X, y, sizes = matrix(labelled, builders)
    Xv, yv, sv = matrix(valid, builders, drop_unlabelled=True)
    booster, info = (fit_fn or fit)(X, y, sizes, (Xv, yv, sv) if len(sv) else None, config)
    if config.refit and len(sv):
        # the validation windows are the most recent: too valuable to leave out of the model
        rounds = max(info["best_iteration"], 10)
        refit_config = replace(config, n_estimators=rounds)
        both = (np.vstack([X, Xv]), np.concatenate([y, yv]), np.concatenate([sizes, sv]))
        booster, refit_info = fit(*both, None, refit_config)
        info.update(
            refit_rounds=rounds,
            train_seconds=info["train_seconds"] + refit_info["train_seconds"],
            train_rows=refit_info["train_rows"],
            train_groups=refit_info["train_groups"],
        )
    info.update(
        train_queries=len(labelled),
        valid_queries=int(len(sv)),
        test_queries=len(test),
        cutoff=str(split.cutoff),
        train_points=[str(p) for p in split.train_points],
        valid_point=str(split.valid_point),
    )
    Xt, _, _ = matrix(test, builders)
    table = {}
    if test:
        table = evaluation_table(test, Xt, {"lightgbm": predict(booster, Xt)})
    final = snapshot(events, space, split.end, catalog_prices)
    final_builder = builder_for(final, space, vocab=vocab_builder.vocab, **common)
    return TrainResult(booster, final_builder, split, info, table, test, Xt)
