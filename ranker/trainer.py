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
from ranker.prior import Prior
from ranker.profile import ProductSpace
from ranker.train import (
    TrainConfig,
    builder_for,
    fit,
    make_prior,
    matrix,
    predict,
    split_scores,
)

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
    #: the baseline the trees were boosted from (None: from zero)
    prior: Prior | None = None

    def predict(self, X: np.ndarray) -> np.ndarray:
        return predict(self.booster, X, self.prior)


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


def _features_at(events, space, snap, until, depth, make_builder, labelled_only):
    groups = event_queries(events, space, snap, until, n_candidates=depth)
    if labelled_only:
        groups = [g for g in groups if (g.labels > 0).any()]
    X, y, sizes = matrix(groups, {snap.as_of: make_builder(snap)})
    return groups, X, y, sizes


def test_matrix(
    events: pd.DataFrame,
    space: ProductSpace,
    split: TimeSplit,
    n_candidates: int,
    make_builder,
    *,
    catalog_prices=None,
    show_progress: bool = False,
) -> tuple[list[QueryGroup], np.ndarray]:
    """The test period's query groups and features, window by window (see ``time_split``)."""
    groups, parts = [], []
    windows = split.test_windows()
    for start, stop in tqdm(windows, desc="test windows", disable=not show_progress):
        snap = snapshot(events, space, start, catalog_prices)
        found, X, _, _ = _features_at(
            events, space, snap, stop, n_candidates, make_builder, labelled_only=False
        )
        groups += found
        parts.append(X)
    return groups, np.vstack(parts) if parts else np.zeros((0, len(FEATURES)), np.float32)


def _stack(parts):
    if not parts:
        return np.zeros((0, len(FEATURES)), np.float32), np.zeros(0), np.zeros(0, np.int64)
    return (
        np.vstack([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]).astype(np.int64),
    )


def _truncate(X, y, sizes, depth: int):
    """Each group cut to its first ``depth`` rows; groups left without a positive dropped."""
    keep_rows, keep_sizes, start = [], [], 0
    for n in sizes:
        k = min(int(n), depth)
        if (y[start : start + k] > 0).any():
            keep_rows.append(np.arange(start, start + k))
            keep_sizes.append(k)
        start += int(n)
    rows = np.concatenate(keep_rows) if keep_rows else np.zeros(0, np.int64)
    return X[rows], y[rows], np.asarray(keep_sizes, dtype=np.int64)


def _cv_rounds(parts, served, block: int, config: TrainConfig, prior) -> tuple[int, int]:
    """Trees that maximise the mean validation nDCG@10 over successive time blocks.

    One validation block of a few hundred queries picks the number of trees by chance (on H&M
    it once picked 2 trees where neighbouring periods wanted 200); the mean curve over several
    blocks, each scored by a model trained only on the windows before it, is steadier.
    """
    curves = []
    for k in range(config.cv_folds):
        stop = len(parts) - k * block
        start = stop - block
        if start < 1:
            break
        train = _sample_groups(*_stack(parts[:start]), config.max_train_queries, config.seed)
        valid = _stack(served[start:stop])
        if not len(train[2]) or not len(valid[2]):
            continue
        _, info = fit(*train, valid, config, prior=prior, early_stop=False)
        curves.append(np.asarray(info["valid_curve"]))
    if not curves:
        raise RankerDataError(
            f"cv_folds={config.cv_folds}: no validation block has engaged products among the "
            "candidates; use fewer folds or log more events"
        )
    length = min(len(c) for c in curves)
    mean = np.mean([c[:length] for c in curves], axis=0)
    return int(np.argmax(mean)) + 1, len(curves)


def _sample_groups(X, y, sizes, cap: int | None, seed: int):
    """At most ``cap`` query groups, sampled, in their original (time) order."""
    if not cap or len(sizes) <= cap:
        return X, y, sizes
    keep = np.sort(np.random.default_rng(seed).choice(len(sizes), cap, replace=False))
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    rows = np.concatenate([np.arange(bounds[i], bounds[i + 1]) for i in keep])
    return X[rows], y[rows], sizes[keep]


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
    split = split or time_split(events, windows=config.windows, window_days=config.window_days)
    common = {
        "attractiveness": attractiveness,
        "texts": texts,
        "style_head": style_head,
        "products": products,
    }
    # event queries carry the product's category as the object's and no scene
    vocab = {"scene_category": [], "object_category": sorted(set(space.categories))}

    def make_builder(snap):
        return builder_for(snap, space, vocab=vocab, **common)

    points = [*split.train_points, split.valid_point, split.cutoff]
    windows = list(zip(points[:-1], points[1:], strict=True))
    n_valid = max(1, min(config.valid_windows, len(windows) - 1))
    # deeper candidate lists in training give more queries whose engaged product is in
    # reach; validation and test use the served depth
    train_depth = max(config.train_candidates or 0, config.n_candidates)
    parts = []
    for start, stop in tqdm(windows, desc="train windows", disable=not show_progress):
        snap = snapshot(events, space, start, catalog_prices)
        _, X, y, sizes = _features_at(
            events, space, snap, stop, train_depth, make_builder, labelled_only=True
        )
        parts.append((X, y, sizes))
    # validation sees what serving sees: the top n_candidates of each list
    served = [_truncate(*part, config.n_candidates) for part in parts]
    n_train = len(windows) - n_valid
    X, y, sizes = _sample_groups(*_stack(parts[:n_train]), config.max_train_queries, config.seed)
    Xv, yv, sv = _stack(served[n_train:])
    if not len(sizes):
        raise RankerDataError(
            "no training query has its engaged product among the FAISS candidates; "
            "more events or more candidates (--candidates) are needed"
        )
    prior = make_prior(X, sizes, config)
    if config.cv_folds:
        rounds, folds = _cv_rounds(parts, served, n_valid, config, prior)
        everything = _sample_groups(*_stack(parts), config.max_train_queries, config.seed)
        booster, info = (fit_fn or fit)(
            *everything, None, replace(config, n_estimators=rounds), prior=prior
        )
        info.update(cv_rounds=rounds, cv_folds=folds, best_iteration=rounds)
    else:
        booster, info = (fit_fn or fit)(
            X, y, sizes, (Xv, yv, sv) if len(sv) else None, config, prior=prior
        )
    if config.refit and len(sv) and not config.cv_folds:
        # the validation windows are the most recent: too valuable to leave out of the model
        rounds = max(info["best_iteration"], 10)
        refit_config = replace(config, n_estimators=rounds)
        both = (np.vstack([X, Xv]), np.concatenate([y, yv]), np.concatenate([sizes, sv]))
        booster, refit_info = fit(*both, None, refit_config, prior=prior)
        info.update(
            refit_rounds=rounds,
            train_seconds=info["train_seconds"] + refit_info["train_seconds"],
            train_rows=refit_info["train_rows"],
            train_groups=refit_info["train_groups"],
        )
    test, Xt = test_matrix(
        events,
        space,
        split,
        config.n_candidates,
        make_builder,
        catalog_prices=catalog_prices,
        show_progress=show_progress,
    )
    info.update(
        train_queries=int(len(sizes)),
        valid_queries=int(len(sv)),
        test_queries=len(test),
        cutoff=str(split.cutoff),
        train_windows=len(windows) - n_valid,
        valid_windows=n_valid,
        test_windows=len(split.test_windows()),
        first_window=str(points[0]),
        valid_point=str(windows[-n_valid][0]),
    )
    table = {}
    if test:
        table = evaluation_table(test, Xt, {"lightgbm": predict(booster, Xt, prior)})
    final = snapshot(events, space, split.end, catalog_prices)
    return TrainResult(booster, make_builder(final), split, info, table, test, Xt, prior)
