"""Training, evaluating and saving the LightGBM lambdarank re-ranker.

A model folder holds ``model.txt`` (LightGBM), ``features.json`` (the feature list it was
trained on), ``metrics.json``, ``product_stats.parquet`` (attractiveness and engagement of
each product at training time) and ``manifest.json`` tying them together.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from ranker.attractiveness import ATTRACTIVENESS
from ranker.dataset import QueryGroup, Snapshot
from ranker.engagement import STAT_COLUMNS
from ranker.features import CATEGORICAL, FEATURE_VERSION, FEATURES, FeatureBuilder
from ranker.metrics import mean_metrics
from ranker.prior import Prior, with_prior
from ranker.profile import ProductSpace

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MODEL_KIND = "lightgbm-lambdarank"


@dataclass
class TrainConfig:
    n_candidates: int = 200
    # small, slow, strongly regularised trees: engagement labels are few and noisy (chosen
    # on H&M periods before any test cut-off, see benchmarks/eval_hm.py)
    num_leaves: int = 7
    learning_rate: float = 0.03
    n_estimators: int = 500
    min_data_in_leaf: int = 100
    lambda_l2: float = 10.0
    #: training windows between the history-only start and the test cut-off
    windows: int = 4
    #: the last this-many windows choose the number of trees (early stopping) ...
    valid_windows: int = 1
    #: ... after which the model is refitted on all windows with that many trees
    refit: bool = False
    #: instead: choose the number of trees on this many successive validation blocks (each
    #: ``valid_windows`` long, trained on the windows before it), then fit on all windows
    cv_folds: int = 0
    feature_fraction: float = 0.7
    #: share of rows each tree sees (1.0: all)
    bagging_fraction: float = 0.8
    early_stopping_rounds: int = 50
    #: window length in days (rolling features, see ``time_split``); None: quantile windows
    window_days: int | None = None
    #: candidates per training query when deeper than ``n_candidates`` (more labelled queries)
    train_candidates: int | None = None
    #: boost from this feature's order instead of from zero (see ranker/prior.py); None: zero
    prior_feature: str | None = None
    #: score units per typical within-query step of the prior feature
    prior_strength: float = 0.5
    #: cap on training queries (sampled) to bound CPU time
    max_train_queries: int | None = 4000
    seed: int = 0


def builder_for(
    snap: Snapshot,
    space: ProductSpace,
    *,
    attractiveness=None,
    texts=None,
    vocab=None,
    style_head=None,
    products=None,
) -> FeatureBuilder:
    return FeatureBuilder(
        space,
        snap.profiles,
        snap.engagement,
        attractiveness=attractiveness,
        texts=texts or {},
        vocab=vocab or {},
        style_head=style_head,
        products=products,
    )


def matrix(
    groups: Sequence[QueryGroup],
    builders: dict[pd.Timestamp, FeatureBuilder],
    drop_unlabelled: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stacked features, labels and group sizes (groups with no positive dropped on request)."""
    xs, ys, sizes = [], [], []
    for g in groups:
        if drop_unlabelled and not (g.labels > 0).any():
            continue
        xs.append(builders[g.as_of].build(g.context, g.candidates))
        ys.append(g.labels)
        sizes.append(len(g.candidates))
    if not xs:
        return np.zeros((0, len(FEATURES)), np.float32), np.zeros(0), np.zeros(0, np.int64)
    return np.vstack(xs), np.concatenate(ys), np.asarray(sizes, dtype=np.int64)


def make_prior(X: np.ndarray, sizes: np.ndarray, config: TrainConfig) -> Prior | None:
    if not config.prior_feature:
        return None
    return Prior.fit(config.prior_feature, config.prior_strength, X, sizes)


def fit(
    X: np.ndarray,
    y: np.ndarray,
    sizes: np.ndarray,
    valid: tuple | None,
    config: TrainConfig,
    prior: Prior | None = None,
    early_stop: bool = True,
) -> tuple[lgb.Booster, dict]:
    """Train; with ``valid``, record its nDCG@10 per round (and stop early unless told not to)."""
    prior = prior or make_prior(X, sizes, config)
    params = {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [10],
        "num_leaves": config.num_leaves,
        "learning_rate": config.learning_rate,
        "min_data_in_leaf": config.min_data_in_leaf,
        "lambda_l2": config.lambda_l2,
        "feature_fraction": config.feature_fraction,
        "bagging_fraction": config.bagging_fraction,
        "bagging_freq": 1 if config.bagging_fraction < 1.0 else 0,
        "bagging_seed": config.seed,
        "feature_fraction_seed": config.seed,
        "seed": config.seed,
        "num_threads": 2,
        "deterministic": True,
        "verbose": -1,
        "lambdarank_truncation_level": 20,
    }
    cats = [FEATURES.index(c) for c in CATEGORICAL]
    train = lgb.Dataset(
        X,
        y,
        group=sizes,
        feature_name=list(FEATURES),
        categorical_feature=cats,
        free_raw_data=False,
        init_score=None if prior is None else prior.scores(X),
    )
    sets, callbacks, curve = [], [], {}
    if valid is not None and len(valid[2]):
        init = None if prior is None else prior.scores(valid[0])
        sets = [lgb.Dataset(valid[0], valid[1], group=valid[2], reference=train, init_score=init)]
        callbacks = [lgb.record_evaluation(curve)]
        if early_stop:
            callbacks.append(lgb.early_stopping(config.early_stopping_rounds, verbose=False))
    start = time.perf_counter()
    booster = lgb.train(
        params, train, num_boost_round=config.n_estimators, valid_sets=sets, callbacks=callbacks
    )
    info = {
        "train_seconds": round(time.perf_counter() - start, 2),
        "best_iteration": int(booster.best_iteration or booster.current_iteration()),
        "train_rows": int(len(y)),
        "train_groups": int(len(sizes)),
        "params": params,
        "prior": None if prior is None else prior.to_dict(),
    }
    if curve:
        info["valid_curve"] = [float(v) for v in curve["valid_0"]["ndcg@10"]]
    return booster, info


def predict(booster: lgb.Booster, X: np.ndarray, prior: Prior | None = None) -> np.ndarray:
    """Ranking scores: the trees' output on top of the prior's (when trained with one)."""
    return with_prior(booster.predict(X, num_iteration=booster.best_iteration or None), X, prior)


def evaluate(groups: Sequence[QueryGroup], scores: Sequence[np.ndarray], k: int = 10) -> dict:
    return mean_metrics([g.labels for g in groups], scores, k)


def split_scores(values: np.ndarray, groups: Sequence[QueryGroup]) -> list[np.ndarray]:
    bounds = np.cumsum([0] + [len(g.candidates) for g in groups])
    return [values[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def product_stats(space: ProductSpace, builder: FeatureBuilder) -> pd.DataFrame:
    """Per-product attractiveness and engagement, saved with the model for serving."""
    table = pd.DataFrame(index=pd.Index(space.ids, name="product_id"))
    if builder.attractiveness is not None:
        table = table.join(builder.attractiveness[list(ATTRACTIVENESS)])
    if builder.engagement is not None:
        table = table.join(builder.engagement.table[list(STAT_COLUMNS)])
    return table


def save_model(
    folder: str | Path,
    booster: lgb.Booster,
    builder: FeatureBuilder,
    *,
    metrics: dict,
    train_info: dict,
    catalog_info: dict | None = None,
    extra: dict | None = None,
) -> Path:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(out / "model.txt"), num_iteration=booster.best_iteration or None)
    (out / "features.json").write_text(json.dumps(list(FEATURES), indent=1))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
    product_stats(builder.space, builder).to_parquet(out / "product_stats.parquet")
    population = builder.profiles.population
    manifest = {
        "format_version": FORMAT_VERSION,
        "kind": MODEL_KIND,
        "feature_version": FEATURE_VERSION,
        "features": list(FEATURES),
        "categorical": list(CATEGORICAL),
        "vocab": builder.vocab,
        "catalog": catalog_info or {},
        "population": {
            "product_ids": population.product_ids,
            "weights": [float(w) for w in population.weights],
            "price": population.price,
        },
        "prior": train_info.get("prior"),
        "train": {k: v for k, v in train_info.items() if k != "params"},
        "params": train_info.get("params", {}),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str))
    return out


def config_dict(config: TrainConfig) -> dict:
    return asdict(config)
