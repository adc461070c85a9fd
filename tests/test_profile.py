"""User style profiles (seed 004 max / mean / mean-top-K) and features on a hand-made catalog."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ranker.base import RankContext
from ranker.engagement import EngagementStats
from ranker.features import FEATURES, FeatureBuilder
from ranker.profile import ProductSpace, ProfileBook
from shopthelook.core.types import Box, Detection, ProductHit

T0 = pd.Timestamp("2024-03-01", tz="UTC")


@pytest.fixture
def space() -> ProductSpace:
    # four chairs along two axes, two lamps: similarities are easy to work out by hand
    vectors = np.array(
        [
            [1, 0, 0, 0],
            [0, 1, 0, 0],
            [0.8, 0.6, 0, 0],
            [0.6, 0.8, 0, 0],
            [0, 0, 1, 0],
            [0, 0, 0.6, 0.8],
        ],
        dtype=np.float32,
    )
    return ProductSpace(["c1", "c2", "c3", "c4", "l1", "l2"], vectors, ["chair"] * 4 + ["lamp"] * 2)


def _events(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["event_type", "user_id", "product_id", "days", "price"])
    frame["ts"] = T0 + pd.to_timedelta(frame.pop("days"), unit="D")
    return frame


def test_profile_scores_are_max_mean_and_top_k(space):
    events = _events([("purchase", "ann", "c1", 0, 10.0), ("purchase", "ann", "c2", 0, 30.0)])
    book = ProfileBook.build(events, space, as_of=T0 + pd.Timedelta(days=1))
    profile = book.get("ann")
    assert sorted(profile.product_ids) == ["c1", "c2"]
    sims = profile.similarities(space.vectors[[2]], top_k=1)
    assert sims["max"][0] == pytest.approx(0.8)
    assert sims["mean"][0] == pytest.approx(0.7)
    assert sims["topk"][0] == pytest.approx(0.8)
    assert 10.0 <= profile.price <= 30.0


def test_event_kind_and_recency_weight_the_profile(space):
    events = _events(
        [
            ("click", "bo", "c1", 0, None),
            ("purchase", "bo", "c2", 0, None),
            ("purchase", "cy", "c1", 0, None),
            ("purchase", "cy", "c2", 200, None),
            ("impression", "cy", "l1", 200, None),
        ]
    )
    book = ProfileBook.build(events, space, as_of=T0 + pd.Timedelta(days=201))
    bo = book.get("bo")
    assert bo.weights[bo.product_ids.index("c2")] == pytest.approx(
        3 * bo.weights[bo.product_ids.index("c1")]
    )
    cy = book.get("cy")
    # the old purchase has decayed; an impression alone adds nothing to taste
    assert cy.centroid @ space.vectors[1] > cy.centroid @ space.vectors[0]
    assert "l1" not in cy.product_ids


def test_events_after_as_of_are_ignored(space):
    events = _events([("purchase", "ann", "c1", 0, None), ("purchase", "ann", "l1", 10, None)])
    book = ProfileBook.build(events, space, as_of=T0 + pd.Timedelta(days=5))
    assert book.get("ann").product_ids == ["c1"]


def test_new_user_gets_the_population_profile(space):
    events = _events(
        [
            ("purchase", "ann", "c1", 0, None),
            ("purchase", "bo", "c1", 0, None),
            ("click", "bo", "l1", 0, None),
        ]
    )
    book = ProfileBook.build(events, space)
    newcomer = book.get("nobody-seen")
    assert newcomer.is_population and newcomer is book.get(None)
    assert newcomer.product_ids[0] == "c1"  # the most engaged product leads


def test_unknown_products_and_empty_logs_do_not_break_profiles(space):
    events = _events([("purchase", "ann", "gone", 0, None)])
    book = ProfileBook.build(events, space)
    assert book.get("ann").is_population
    empty = ProfileBook.build(events.iloc[:0], space)
    sims = empty.get("x").similarities(space.vectors[:2])
    assert np.isnan(sims["max"]).all()


def test_faiss_search_is_category_restricted(space):
    hits = space.search(np.array([1, 0, 0, 0], np.float32), "chair", 3)[0]
    assert [h[0] for h in hits] == ["c1", "c3", "c4"]
    assert space.search(np.array([1, 0, 0, 0], np.float32), "lamp", 5)[0][0][0] in ("l1", "l2")


def _context(space, user, **kw) -> RankContext:
    det = Detection(Box(0, 0, 10, 10), "chair", 0.9, "chair", ("chair",))
    return RankContext(user_id=user, detection=det, query_embedding=space.vectors[0], **kw)


def test_features_on_a_tiny_catalog(space):
    events = _events(
        [
            ("impression", "ann", "c3", 0, None),
            ("click", "ann", "c3", 0, None),
            ("purchase", "ann", "c2", 1, 20.0),
            ("purchase", "bo", "c3", 1, 40.0),
        ]
    )
    as_of = T0 + pd.Timedelta(days=2)
    book = ProfileBook.build(events, space, as_of=as_of)
    stats = EngagementStats.build(events, as_of=as_of)
    attr = pd.DataFrame({"brightness": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}, index=space.ids)
    for name in (
        "saturation",
        "saturation_std",
        "contrast",
        "colorfulness",
        "sharpness",
        "entropy",
    ):
        attr[name] = 0.0
    products = pd.DataFrame(
        {
            "product_id": space.ids,
            "name": ["Red chair", "blue chair", "Red velvet chair", "oak chair", "lamp", "lamp"],
        }
    )
    builder = FeatureBuilder(
        space,
        book,
        stats,
        attractiveness=attr,
        texts=FeatureBuilder.product_texts(products),
        vocab={"scene_category": ["Bedroom", "Kitchen"], "object_category": ["chair"]},
    )
    hits = [
        ProductHit(p, s, "chair") for p, s in (("c1", 1.0), ("c3", 0.8), ("c4", 0.6), ("c2", 0.0))
    ]
    lamp = Detection(Box(20, 0, 30, 10), "lamp", 0.9, "lamp", ("lamp",))
    ctx = _context(
        space,
        "ann",
        adjective="red",
        scene_category="Kitchen",
        scene_objects=[_context(space, "ann").detection, lamp],
        scene_embeddings=np.stack([space.vectors[0], space.vectors[5]]),
    )
    X = builder.build(ctx, hits)
    col = {name: X[:, i] for i, name in enumerate(FEATURES)}
    assert X.shape == (4, len(FEATURES))
    np.testing.assert_allclose(col["visual_sim"], [1.0, 0.8, 0.6, 0.0], atol=1e-6)
    np.testing.assert_allclose(col["visual_rank"], [0, 1, 2, 3])
    np.testing.assert_allclose(col["style_max"], [0.8, 1.0, 0.96, 1.0], atol=1e-6)  # ann: c2, c3
    assert col["cold_start"][0] == 0
    np.testing.assert_allclose(col["adjective_match"], [1, 1, 0, 0])  # c1, c3 are red
    assert col["popularity"][1] > col["popularity"][3] > col["popularity"][0] == 0
    assert np.isnan(col["recency_days"][0]) and col["recency_days"][1] == pytest.approx(
        1.0, abs=0.6
    )
    np.testing.assert_allclose(col["attr_brightness"], [0.1, 0.3, 0.4, 0.2], atol=1e-6)
    assert col["scene_category"][0] == 1 and col["object_category"][0] == 0
    assert col["ctx_objects"][0] == 1 and col["ctx_same_category"][0] == 0
    # the lamp's best lamp match is l2 itself; chairs are orthogonal to it
    np.testing.assert_allclose(col["ctx_match_sim_max"], [0, 0, 0, 0], atol=1e-6)
    # ann usually pays 20; c3 sold for 40 -> log 2
    assert col["price_ratio"][1] == pytest.approx(np.log(2.0))
    assert np.isnan(col["same_sim"]).all()


def test_features_for_a_new_user_and_unknown_candidate(space):
    book = ProfileBook.build(_events([("purchase", "ann", "c1", 0, None)]), space)
    builder = FeatureBuilder(space, book)
    X = builder.build(
        _context(space, "stranger"),
        [ProductHit("c2", 0.5, "chair"), ProductHit("not-in-catalog", 0.4, "chair")],
    )
    col = {name: X[:, i] for i, name in enumerate(FEATURES)}
    assert col["cold_start"][0] == 1
    assert np.isnan(col["visual_sim"][1]) and not np.isnan(col["visual_sim"][0])
    assert np.isnan(col["scene_category"]).all()


def test_same_similarity_uses_the_head_when_given(space):
    from embedder.head import IdentityHead

    book = ProfileBook.build(_events([("purchase", "ann", "c1", 0, None)]), space)
    builder = FeatureBuilder(space, book, style_head=IdentityHead(space.dim))
    hits = [ProductHit("c3", 0.8, "chair"), ProductHit("c2", 0.0, "chair")]
    X = builder.build(_context(space, "ann"), hits)
    same = X[:, FEATURES.index("same_sim")]
    np.testing.assert_allclose(same, X[:, FEATURES.index("visual_sim")], atol=1e-6)
    np.testing.assert_allclose(same, [0.8, 0.0], atol=1e-6)
