"""look-recall@K against a hand count, and the random baseline's exact expectation."""

from __future__ import annotations

import pandas as pd
import pytest

from shopthelook.core.types import Box, Detection
from shopthelook.evaluate import _random_hit_probability, evaluate_looks
from shopthelook.pipeline import ShopTheLook
from tests.helpers import build_catalog
from tests.test_pipeline import FixedBoxes, scene_with_products


def test_recall_matches_a_hand_count(tmp_path):
    catalog = build_catalog(tmp_path, n=12)
    scene = scene_with_products(catalog, tmp_path)
    pipe = ShopTheLook(
        catalog,
        detector=FixedBoxes(
            [
                Detection(Box(20, 30, 84, 94), "chair", 0.9, "chair", ("chair",)),
            ]
        ),
    )
    pipe.settings.crop_margin = 0.0
    scenes = pd.DataFrame({"scene_id": ["s1"], "image": [str(scene)]})
    # P000 (chair) is pasted and searched: a hit at every K. P001 (sofa) is pasted but no
    # object searches sofas: a miss, not covered. P003 (chair, not pasted): 4 chairs exist,
    # so it is in the top-4 but (being a different picture) not the top-1.
    pairs = pd.DataFrame(
        {
            "scene_id": ["s1", "s1", "s1", "s1"],
            "product_id": ["P000", "P001", "P003", "NOT-IN-CATALOG"],
        }
    )
    result = evaluate_looks(pipe, scenes, pairs, ks=(1, 4))
    assert result.pairs_not_in_catalog == 1
    assert result.overall.pairs == 3
    assert result.overall.hits == {1: 1, 4: 2}
    assert result.overall.covered == 2
    assert result.by_category["sofa"].hits == {1: 0, 4: 0}
    assert result.detectable.pairs == 3  # chair and sofa are both detectable categories
    assert result.covered.pairs == 2 and result.covered.hits == {1: 1, 4: 2}
    d = result.as_dict()
    assert d["overall"]["recall"] == {
        "1": pytest.approx(1 / 3, abs=1e-4),
        "4": pytest.approx(2 / 3, abs=1e-4),
    }
    # random order over 4 chairs: top-1 hit chance 1/4, top-4 certain, for each chair pair
    assert d["overall"]["random"]["1"] == pytest.approx((0.25 + 0.25) / 3, abs=1e-4)
    assert d["overall"]["random"]["4"] == pytest.approx(2 / 3, abs=1e-4)
    assert "all pairs" in result.table()


def test_random_hit_probability_over_several_objects():
    sizes = {"chair": 10, "armchair": 10}
    reach = [([], {"chair"}), ([], {"chair", "armchair"})]
    # 1 - (1 - 2/10) * (1 - 2/20)
    assert _random_hit_probability(reach, sizes, 2) == pytest.approx(1 - 0.8 * 0.9)
    assert _random_hit_probability([], sizes, 5) == 0.0
