"""The LightGBM re-ranker: metrics, time split, planted preference, serving and fallbacks."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from ranker.base import RankContext, Ranker, VisualOrderRanker
from ranker.dataset import RankerDataError, clean_events, event_queries, snapshot, time_split
from ranker.features import FEATURES
from ranker.lgbm import LightGBMRanker, RankerModelError, load_ranker
from ranker.metrics import group_metrics
from ranker.synthetic import make_shop
from ranker.train import TrainConfig, save_model
from ranker.trainer import train_from_events
from shopthelook.core.types import Box, Detection, ProductHit
from tests.helpers import ShopCatalog


@pytest.fixture(scope="module")
def shop():
    return make_shop(n_users=90, per_category=60, purchases_per_user=12, seed=3)


@pytest.fixture(scope="module")
def trained(shop):
    config = TrainConfig(n_candidates=40, n_estimators=150)
    return train_from_events(
        shop.events, shop.space, config=config, attractiveness=shop.attractiveness
    )


def test_metrics_by_hand():
    m = group_metrics(np.array([0, 1, 0]), np.array([0.9, 0.5, 0.1]), k=10)
    assert m["ndcg@10"] == pytest.approx(1 / np.log2(3))
    assert m["hr@10"] == 1.0 and m["mrr"] == 0.5
    miss = group_metrics(np.zeros(5), np.arange(5.0))
    assert miss["ndcg@10"] == 0 and miss["hr@10"] == 0 and miss["mrr"] == 0
    assert group_metrics(np.array([1] + [0] * 20), -np.arange(21.0) * -1)["hr@10"] == 0.0


def test_time_split_has_no_leakage(shop):
    events = clean_events(shop.events, shop.space)
    split = time_split(events)
    assert split.train_points == sorted(split.train_points)
    assert split.train_points[-1] < split.valid_point < split.cutoff < split.end
    snap = snapshot(events, shop.space, split.valid_point)
    groups = event_queries(events, shop.space, snap, split.cutoff, n_candidates=30)
    assert groups
    seen_before = events[events["ts"] < split.valid_point]
    for g in groups:
        # labels come from the window, features only from strictly earlier events
        assert split.valid_point <= g.label_time < split.cutoff
        profile = snap.profiles.get(g.context.user_id)
        user_past = set(seen_before[seen_before["user_id"] == g.context.user_id]["product_id"])
        assert set(profile.product_ids) <= user_past
    stats = snap.engagement.table
    later_only = set(events[events["ts"] >= split.valid_point]["product_id"]) - set(
        seen_before["product_id"]
    )
    assert not (later_only & set(stats.index))


def test_lambdarank_learns_the_planted_preference(trained):
    table = trained.table
    best_baseline = max(table[m]["ndcg@10"] for m in table if m != "lightgbm")
    assert table["lightgbm"]["queries"] > 50
    # users favour bright products of their style: no single signal sees both
    assert table["lightgbm"]["ndcg@10"] > 1.15 * best_baseline
    importance = dict(zip(FEATURES, trained.booster.feature_importance("gain"), strict=True))
    assert importance["attr_brightness"] > 0
    assert max(importance["style_max"], importance["style_topk"], importance["style_centroid"]) > 0


def test_rolling_windows_cover_the_test_period_without_leakage(shop):
    events = clean_events(shop.events, shop.space)
    split = time_split(events, window_days=7)
    starts = [*split.train_points, split.valid_point]
    assert all(b - a == pd.Timedelta(days=7) for a, b in zip(starts[:-1], starts[1:], strict=False))
    assert split.valid_point < split.cutoff <= split.valid_point + pd.Timedelta(days=7)
    windows = split.test_windows()
    assert windows[0][0] == split.cutoff and windows[-1][1] == split.end
    assert all(a[1] == b[0] for a, b in zip(windows[:-1], windows[1:], strict=False))
    # a test query's features are as of its own window's start, never later
    as_of, until = windows[1]
    snap = snapshot(events, shop.space, as_of)
    groups = event_queries(events, shop.space, snap, until, n_candidates=30)
    assert groups and all(as_of <= g.label_time < until for g in groups)
    assert snap.engagement.table["recency_days"].min() > 0
    with pytest.raises(RankerDataError, match="window_days"):
        time_split(events, window_days=0)


def test_rolling_training_with_deeper_training_candidates_learns(shop):
    config = TrainConfig(
        n_candidates=30, train_candidates=60, window_days=7, valid_windows=2, n_estimators=120
    )
    result = train_from_events(
        shop.events, shop.space, config=config, attractiveness=shop.attractiveness
    )
    assert result.info["test_windows"] == len(result.split.test_windows()) > 1
    # test queries keep the served depth; training used the deeper lists
    assert {len(g.candidates) for g in result.test_groups} == {30}
    assert result.info["train_rows"] > 30 * result.info["train_groups"]
    table = result.table
    best_baseline = max(table[m]["ndcg@10"] for m in table if m != "lightgbm")
    assert table["lightgbm"]["ndcg@10"] > 1.15 * best_baseline


def test_tree_count_chosen_on_successive_time_blocks(shop):
    config = TrainConfig(n_candidates=30, window_days=7, valid_windows=2, cv_folds=2)
    result = train_from_events(
        shop.events, shop.space, config=config, attractiveness=shop.attractiveness
    )
    info = result.info
    assert info["cv_folds"] == 2 and 1 <= info["cv_rounds"] <= config.n_estimators
    assert result.booster.current_iteration() == info["cv_rounds"]
    table = result.table
    best_baseline = max(table[m]["ndcg@10"] for m in table if m != "lightgbm")
    assert table["lightgbm"]["ndcg@10"] > 1.15 * best_baseline


def test_too_few_events_is_a_clear_error(shop):
    with pytest.raises(RankerDataError, match="need at least 20"):
        time_split(shop.events.head(10))
    with pytest.raises(RankerDataError, match="empty"):
        clean_events(shop.events.iloc[:0], shop.space)
    unknown = shop.events.assign(product_id="nope")
    with pytest.raises(RankerDataError, match="catalog"):
        clean_events(unknown, shop.space)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, trained):
    folder = tmp_path_factory.mktemp("model")
    save_model(
        folder,
        trained.booster,
        trained.final_builder,
        metrics=trained.table,
        train_info=trained.info,
        catalog_info={"dim": 24},
    )
    return folder


def _context(shop, user):
    det = Detection(Box(0, 0, 5, 5), "cat0", 0.9, "cat0", ("cat0",))
    query = shop.space.vectors[shop.space.row["p0-000"]]
    return RankContext(user_id=user, detection=det, query_embedding=query)


def _candidates(shop, n=30):
    ctx_query = shop.space.vectors[shop.space.row["p0-000"]]
    found = shop.space.search(ctx_query, "cat0", n)[0]
    return [ProductHit(p, s, "cat0") for p, s in found]


def test_model_folder_serves_reorders_and_explains(shop, model_dir):
    files = {p.name for p in model_dir.iterdir()}
    assert {"model.txt", "features.json", "metrics.json", "manifest.json"} <= files
    assert json.loads((model_dir / "features.json").read_text()) == list(FEATURES)
    ranker = LightGBMRanker.load(model_dir, catalog=ShopCatalog(shop), events=shop.events)
    assert isinstance(ranker, Ranker)
    hits = _candidates(shop)
    ids = {h.product_id for h in hits}
    ranked = ranker.rank(_context(shop, "u001"), hits)
    assert {h.product_id for h in ranked} == ids and len(ranked) == len(hits)
    scores = [h.score for h in ranked]
    assert scores == sorted(scores, reverse=True)
    assert ranked[0].reason and all(part for part in ranked[0].reason.split(" · "))
    assert set(ranked[0].features) == set(FEATURES)
    # a stranger still gets a ranking, explained with the population's taste
    cold = ranker.rank(_context(shop, "never-seen"), _candidates(shop))
    assert len(cold) == len(hits) and cold[0].features["cold_start"] == 1.0
    assert "your style" not in " ".join(h.reason or "" for h in cold)


def test_personal_rankings_differ_between_users_of_different_styles(shop, model_dir):
    ranker = LightGBMRanker.load(model_dir, catalog=ShopCatalog(shop), events=shop.events)
    by_style = {}
    for user, style in shop.user_style.items():
        by_style.setdefault(style, user)
    users = list(by_style.values())[:2]
    tops = [
        [h.product_id for h in ranker.rank(_context(shop, u), _candidates(shop))[:5]] for u in users
    ]
    assert tops[0] != tops[1]


def test_missing_model_falls_back_to_the_visual_order(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        ranker = load_ranker(tmp_path / "nope", catalog=None)
    assert isinstance(ranker, VisualOrderRanker)
    assert "visual order" in ranker.fallback_reason and "nope" in ranker.fallback_reason
    assert any("visual order" in r.message for r in caplog.records)
    assert load_ranker(None).fallback_reason


def test_model_from_an_older_feature_list_is_refused(shop, model_dir, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    for f in model_dir.iterdir():
        (old / f.name).write_bytes(f.read_bytes())
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["features"] = manifest["features"][:-1] + ["retired_feature"]
    manifest["feature_version"] = 0
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RankerModelError, match="another feature list.*retired_feature"):
        LightGBMRanker.load(old, catalog=ShopCatalog(shop))
    fallback = load_ranker(old, catalog=ShopCatalog(shop))
    assert isinstance(fallback, VisualOrderRanker) and "retrain" in fallback.fallback_reason
    hits = _candidates(shop, 10)
    assert [h.product_id for h in fallback.rank(_context(shop, "u001"), hits)] == [
        h.product_id for h in sorted(hits, key=lambda h: -h.score)
    ]


def test_corrupt_model_file_falls_back(shop, model_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in model_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / "model.txt").write_text("not a model")
    fallback = load_ranker(bad, catalog=ShopCatalog(shop))
    assert isinstance(fallback, VisualOrderRanker) and "corrupt" in fallback.fallback_reason


def test_ranking_no_candidates_and_unknown_products(shop, model_dir):
    ranker = LightGBMRanker.load(model_dir, catalog=ShopCatalog(shop))
    assert ranker.rank(_context(shop, "u001"), []) == []
    hits = [ProductHit("p0-001", 0.5, "cat0"), ProductHit("ghost", 0.9, "cat0")]
    assert {h.product_id for h in ranker.rank(_context(shop, "u001"), hits)} == {"p0-001", "ghost"}


def test_events_frame_with_out_of_order_and_duplicate_rows_still_trains(shop):
    events = shop.events.sample(frac=1.0, random_state=1)
    events = pd.concat([events, events.head(50)])
    clean = clean_events(events, shop.space)
    assert clean["ts"].is_monotonic_increasing
    split = time_split(clean)
    assert split.cutoff < split.end
