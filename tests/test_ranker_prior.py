"""Boosting from a baseline's order (ranker/prior.py): fitting, serving, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ranker.base import RankContext
from ranker.features import FEATURES
from ranker.lgbm import LightGBMRanker
from ranker.prior import Prior, PriorError
from ranker.synthetic import make_shop
from ranker.train import TrainConfig, predict, save_model
from ranker.trainer import train_from_events
from shopthelook.core.types import Box, Detection, ProductHit
from tests.helpers import ShopCatalog

COL = FEATURES.index("style_max")


def _matrix(groups: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    values = [v for g in groups for v in g]
    X = np.full((len(values), len(FEATURES)), np.nan, np.float32)
    X[:, COL] = values
    return X, np.asarray([len(g) for g in groups])


def test_scale_is_strength_over_the_median_within_query_spread():
    # within-query standard deviations 0.5, 1.0 and 2.0: the median is 1.0
    X, sizes = _matrix([[0, 1], [0, 2], [0, 4]])
    prior = Prior.fit("style_max", 0.5, X, sizes)
    assert prior.scale == pytest.approx(0.5)
    assert prior.scores(X).tolist() == pytest.approx([0, 0.5, 0, 1, 0, 2])


def test_unknown_values_score_like_the_lowest_known_one():
    X, _ = _matrix([[0.2, np.nan, 0.8]])
    scores = Prior("style_max", 10.0).scores(X)
    assert scores.tolist() == pytest.approx([2.0, 2.0, 8.0])


def test_a_feature_that_never_varies_within_a_query_gives_no_prior():
    X, sizes = _matrix([[0.3, 0.3], [0.7, 0.7]])
    assert Prior.fit("style_max", 0.5, X, sizes).scale == 0.0


def test_unknown_prior_feature_is_a_clear_error():
    with pytest.raises(PriorError, match="not a ranker feature"):
        Prior("shoe_size", 1.0)
    X, sizes = _matrix([[0, 1]])
    with pytest.raises(PriorError, match="shoe_size"):
        Prior.fit("shoe_size", 0.5, X, sizes)
    assert Prior.from_dict(None) is None
    assert Prior.from_dict({"feature": "style_max", "scale": 2}) == Prior("style_max", 2.0)


@pytest.fixture(scope="module")
def shop():
    return make_shop(n_users=90, per_category=60, purchases_per_user=12, seed=3)


@pytest.fixture(scope="module")
def trained(shop):
    config = TrainConfig(n_candidates=40, n_estimators=150, prior_feature="style_max")
    return train_from_events(
        shop.events, shop.space, config=config, attractiveness=shop.attractiveness
    )


def test_boosted_from_profile_max_still_learns_the_planted_preference(trained):
    assert trained.prior is not None and trained.prior.feature == "style_max"
    assert trained.info["prior"] == trained.prior.to_dict()
    table = trained.table
    # users favour bright products of their style: profile-max alone cannot see brightness
    assert table["lightgbm"]["ndcg@10"] > 1.15 * table["profile-max"]["ndcg@10"]
    # the table is the trees plus the prior, not the trees alone
    trees_only = predict(trained.booster, trained.test_X)
    assert not np.allclose(trees_only, trained.predict(trained.test_X))


def test_served_scores_include_the_prior_and_explain_it(shop, trained, tmp_path):
    save_model(
        tmp_path,
        trained.booster,
        trained.final_builder,
        metrics=trained.table,
        train_info=trained.info,
        catalog_info={"dim": shop.space.dim},
    )
    assert json.loads((tmp_path / "manifest.json").read_text())["prior"] == trained.info["prior"]
    ranker = LightGBMRanker.load(tmp_path, catalog=ShopCatalog(shop), events=shop.events)
    assert ranker.prior == trained.prior
    query = shop.space.vectors[shop.space.row["p0-000"]]
    found = shop.space.search(query, "cat0", 30)[0]
    hits = [ProductHit(p, s, "cat0") for p, s in found]
    det = Detection(Box(0, 0, 5, 5), "cat0", 0.9, "cat0", ("cat0",))
    context = RankContext(user_id="u001", detection=det, query_embedding=query)
    scores, X = ranker.score(context, hits)
    assert scores == pytest.approx(trained.booster.predict(X) + trained.prior.scores(X))
    ranked = ranker.rank(context, hits)
    assert [h.score for h in ranked] == sorted(scores.tolist(), reverse=True)
    assert all(h.reason for h in ranked[:10])
