"""Co-occurrence counts of the coherence model, the whole look's prior, complete the look."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ranker.cooccurrence import Cooccurrence
from shopthelook.core.errors import ConfigError
from tests.test_whole_look import TinyCatalog, identity_model, result_of, unit

SERIES = {"a1": "hemnes", "a2": "malm", "b1": "hemnes", "b2": "malm", "c1": "lack", "x": "odd"}
GROUPS = {"r1": ["a1", "b1"], "r2": ["a1", "b1", "c1"], "r3": ["a2", "c1"], "r4": ["b2", "x"]}


def counts(groups=GROUPS) -> Cooccurrence:
    return Cooccurrence(groups={g: sorted(m) for g, m in groups.items()}, series=dict(SERIES))


def test_leaving_a_group_out_is_the_same_as_never_counting_it(tmp_path):
    full = counts()
    for g in GROUPS:
        without = counts({k: v for k, v in GROUPS.items() if k != g})
        ids = sorted(SERIES)
        a, b = full.pair_features(ids, exclude=g), without.pair_features(ids)
        for name in a:
            assert np.allclose(a[name], b[name]), (g, name)
        assert np.allclose(full.prior(ids, exclude=g), without.prior(ids))
    assert full.pair("a1", "b1")[0] == pytest.approx(np.log1p(2))
    assert full.pair("a1", "b1", exclude="r1")[0] == pytest.approx(np.log1p(1))
    assert full.pair("a1", "a2")[0] == 0.0  # never in one room


def test_saved_counts_know_every_products_series_so_they_cannot_tell_counted_ones(tmp_path):
    # "x" was only in r4: leaving r4 out must look like a product never counted ("a2" after
    # its room is left out), so both keep their series after a save and load
    full = counts()
    full.save(tmp_path)
    again = Cooccurrence.load(tmp_path)
    (tmp_path / "n").mkdir()
    Cooccurrence(groups={"r1": ["a1", "b1"]}, series=dict(SERIES)).save(tmp_path / "n")
    assert Cooccurrence.load(tmp_path / "n").series["x"] == "odd"  # counted in no group
    assert again.series == SERIES
    # a series seen in no other group is no evidence: its PMI is 0, not the largest value
    assert again.pair("x", "a1", exclude="r4")[1] == 0.0
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "cooccurrence.json").write_text("{not json")
    with pytest.raises(ConfigError, match="train the coherence model again"):
        Cooccurrence.load(tmp_path / "bad")
    assert Cooccurrence.load(tmp_path / "nothing") is None


@pytest.fixture
def shop():
    vectors = {p: unit(*np.random.default_rng(n).normal(size=4)) for n, p in enumerate(SERIES)}
    catalog = TinyCatalog(vectors)
    catalog.products["name"] = [SERIES[p].upper() + " thing" for p in vectors]
    catalog.products["category"] = [
        {"a": "chair", "b": "table", "c": "rug", "x": "other"}[p[0]] for p in vectors
    ]
    model = identity_model(catalog)
    model.cooccurrence = counts()
    model.fields = ("series",)
    model.coef = {"bias": -1.0, "cooc:product": 2.0, "same:series": 1.0}
    return catalog, model


def test_counted_pairs_raise_the_pair_logit_and_the_prior_favours_popular_products(shop):
    from shopthelook.whole_look import WholeLookChooser, WholeLookSettings

    catalog, model = shop
    logits = model.pair_logits(catalog, ["a1", "b1", "b2"])
    assert logits[0, 1] > logits[0, 2]  # a1 + b1: together in two rooms
    # object 0 prefers a2 a little; a1 is in two rooms, a2 in one
    result = result_of([("a2", 0.80), ("a1", 0.79)], [("b2", 0.80), ("b1", 0.60)])
    chooser = WholeLookChooser(catalog, model, WholeLookSettings(weight=0.0))
    assert chooser.choose(result).product_ids() == ["a2", "b2"]
    assert chooser.choose(result, prior=0.1).product_ids()[0] == "a1"
    assert chooser.choose(result, weight=1.0).product_ids() == ["a1", "b1"]
    with pytest.raises(ConfigError, match="calibration"):
        WholeLookSettings(calibration="softmax")
    with pytest.raises(ConfigError, match="prior"):
        WholeLookSettings(prior=-1)
    z = WholeLookChooser(catalog, model, WholeLookSettings(weight=0.0, calibration="z"))
    assert z.choose(result).product_ids() == ["a2", "b2"]


def test_complete_the_look_suggests_what_the_scene_lacks_and_what_goes_with_it(shop):
    from shopthelook.complete_look import CompleteLookSettings, CompleteTheLook

    catalog, model = shop
    result = result_of([("a1", 0.9)], [("b1", 0.9)])
    result.objects[0].products[0].category = "chair"
    result.objects[1].products[0].category = "table"
    done = CompleteTheLook(catalog, model, CompleteLookSettings(prior=0.0))
    out = done.suggest(result)
    assert [(s.category, s.product_id) for s in out] == [("rug", "c1")]  # never "other"
    assert out[0].to_dict()["category"] == "rug"
    ranked = done.rank(["a1", "b1"], "chair")
    assert [p for p, _ in ranked] == ["a1", "a2"]  # a1 was in b1's rooms
    assert CompleteTheLook(catalog, model).suggest(result_of()) == []
    with pytest.raises(ConfigError, match="coherence train"):
        CompleteTheLook(catalog, None)
    with pytest.raises(ConfigError, match="positive"):
        CompleteLookSettings(per_category=0)


def test_training_counts_the_training_groups_only(tmp_path):
    from embedder.train_same import TrainConfig
    from ranker.coherence import load_coherence, train_coherence
    from tests.helpers import build_catalog

    catalog = build_catalog(tmp_path, n=24)
    ids = catalog.products["product_id"].tolist()
    groups = pd.DataFrame({"group": [f"g{i % 6}" for i in range(24)], "item_id": ids, "image": ids})
    cfg = TrainConfig(dim_out=16, hidden=(32, 32, 32), max_epochs=2, steps_per_epoch=5)
    model = train_coherence(
        catalog, groups, train_groups=["g0", "g1", "g2"], val_groups=["g3", "g4"],
        test_groups=["g5"], source="test", config=cfg,
    )  # fmt: skip
    assert set(model.cooccurrence.groups) == {"g0", "g1", "g2", "g3", "g4"}
    assert {"cooc:product", "cooc:series"} <= set(model.coef)
    model.save(tmp_path / "coh")
    again = load_coherence(tmp_path / "coh", catalog)
    assert again.cooccurrence is not None and set(again.cooccurrence.groups) == set(
        model.cooccurrence.groups
    )
    assert np.allclose(again.pair_logits(catalog, ids[:6]), model.pair_logits(catalog, ids[:6]))
