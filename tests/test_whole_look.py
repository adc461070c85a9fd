"""Shop the whole look: the joint choice, the coherence model, the CLI, the API and the pages."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shopthelook.core.errors import ConfigError
from shopthelook.core.types import Box, Detection, LookObject, LookResult, ProductHit
from shopthelook.whole_look import (
    NO_MODEL,
    NO_OBJECT,
    ONE_OBJECT,
    WholeLookChooser,
    WholeLookSettings,
)


class TinyCatalog:
    """What the chooser needs of a catalog: vectors by id and the space they live in."""

    backbone, head, path = "test", "", "<memory>"

    def __init__(self, vectors: dict[str, np.ndarray]):
        self.vectors = vectors
        self.dim = len(next(iter(vectors.values())))
        self.products = pd.DataFrame(
            {"product_id": list(vectors), "name": [f"N {p}" for p in vectors], "category": "c"}
        )

    def embeddings(self, ids):
        return np.stack([self.vectors[i] for i in ids]).astype(np.float32)

    def has_product(self, pid):
        return pid in self.vectors


def identity_model(catalog):
    from embedder.same import SameConfig, SameHead
    from ranker.coherence import CoherenceModel

    d = catalog.dim
    cfg = SameConfig(backbone="test", dim_in=d, dim_out=d, hidden=(1, 1, 1), residual=True)
    params = {}
    for i, (o, n) in enumerate(cfg.layer_shapes()):
        params[f"layers.{i}.weight"] = np.zeros((o, n), np.float32)
        params[f"layers.{i}.bias"] = np.zeros((o,), np.float32)
    return CoherenceModel(SameHead(cfg, params), "test", "", d)


def unit(*v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def result_of(*lists, source="detector") -> LookResult:
    objects = []
    for n, hits in enumerate(lists):
        det = Detection(Box(n, 0, n + 10, 10), "thing", 0.9, "c", ("c",), source)
        objects.append(LookObject(det, [ProductHit(p, s, "c") for p, s in hits]))
    return LookResult("x.jpg", 100, 100, objects)


@pytest.fixture
def shop():
    # "red" products point one way, "blue" ones another: red goes with red
    catalog = TinyCatalog(
        {
            "a-blue": unit(0, 1, 0.1),
            "a-red": unit(1, 0, 0),
            "b-red": unit(1, 0.05, 0),
            "b-blue": unit(0, 1, 0),
            "c-red": unit(1, 0, 0.05),
            "c-blue": unit(0.05, 1, 0),
        }
    )
    # visually, object 0 prefers blue a bit; objects 1 and 2 prefer red
    result = result_of(
        [("a-blue", 0.80), ("a-red", 0.78)],
        [("b-red", 0.80), ("b-blue", 0.70)],
        [("c-red", 0.75), ("c-blue", 0.74)],
    )
    return catalog, result


def test_the_joint_choice_trades_a_little_visual_match_for_a_coherent_set(shop):
    catalog, result = shop
    chooser = WholeLookChooser(catalog, identity_model(catalog), WholeLookSettings(weight=0.2))
    look = chooser.choose(result)
    assert look.method == "coherence" and look.message is None
    assert look.product_ids() == ["a-red", "b-red", "c-red"]
    assert [p.object for p in look.products] == [0, 1, 2]
    assert look.coherence > 0.9 and look.score is not None
    # with no weight on coherence it is each object's visual top-1
    top1 = chooser.choose(result, weight=0.0)
    assert top1.product_ids() == ["a-blue", "b-red", "c-red"]
    body = look.to_dict()
    assert set(body) >= {"products", "score", "method"}
    assert body["products"][0] == {
        "object": 0,
        "product_id": "a-red",
        "score": 0.78,
        "category": "c",
    }


def test_the_search_finds_the_exhaustive_optimum_on_random_problems():
    from itertools import product

    from shopthelook.whole_look import _Problem

    rng = np.random.default_rng(3)
    for _ in range(20):
        n, k = 4, 4
        sims = rng.normal(size=(n * k, n * k))
        sims = (sims + sims.T) / 2
        index = [np.arange(i * k, (i + 1) * k) for i in range(n)]
        visual = [rng.normal(scale=0.3, size=k) for _ in range(n)]
        problem = _Problem(visual, index, sims, weight=0.5)
        best = max(product(range(k), repeat=n), key=problem.objective)
        found = problem.solve(beam=16, deadline=float("inf"))
        assert problem.objective(found) == pytest.approx(problem.objective(list(best)))


def test_fallbacks_say_why(shop):
    catalog, result = shop
    visual = WholeLookChooser(catalog).choose(result)
    assert visual.method == "visual" and visual.message == NO_MODEL
    assert visual.product_ids() == ["a-blue", "b-red", "c-red"]
    chooser = WholeLookChooser(catalog, identity_model(catalog))
    one = chooser.choose(result_of([("a-red", 0.9)]))
    assert one.message == ONE_OBJECT and one.product_ids() == ["a-red"]
    none = chooser.choose(result_of([("a-red", 0.9)], source="scene"))
    assert none.message == NO_OBJECT and none.products == [] and none.to_dict()["score"] is None


def test_a_spent_time_budget_still_returns_a_whole_set(shop):
    catalog, result = shop
    settings = WholeLookSettings(weight=0.2, time_budget_s=1e-9)
    look = WholeLookChooser(catalog, identity_model(catalog), settings).choose(result)
    assert len(look.products) == 3


def test_bad_settings_and_a_model_for_another_catalog_are_refused(shop, tmp_path):
    from ranker.coherence import load_coherence

    catalog, _ = shop
    with pytest.raises(ConfigError, match="weight"):
        WholeLookSettings(weight=-1)
    model = identity_model(catalog)
    model.save(tmp_path / "m")
    assert load_coherence(tmp_path / "m", catalog).model_id == model.model_id
    other = TinyCatalog({"x": unit(1, 0, 0, 0)})
    with pytest.raises(ConfigError, match="coherence train"):
        load_coherence(tmp_path / "m", other)
    with pytest.raises(ConfigError, match="not a coherence model"):
        load_coherence(tmp_path / "nothing-here")


def test_training_learns_from_groups_and_records_what_it_never_saw(tmp_path):
    from embedder.train_same import TrainConfig
    from ranker.coherence import load_coherence, train_coherence
    from tests.helpers import build_catalog

    catalog = build_catalog(tmp_path, n=24)
    ids = catalog.products["product_id"].tolist()
    groups = pd.DataFrame({"group": [f"g{i % 6}" for i in range(24)], "item_id": ids, "image": ids})
    cfg = TrainConfig(dim_out=16, hidden=(32, 32, 32), max_epochs=2, steps_per_epoch=5)
    model = train_coherence(
        catalog,
        groups,
        train_groups=["g0", "g1", "g2"],
        val_groups=["g3", "g4"],
        test_groups=["g5"],
        source="test",
        config=cfg,
    )
    assert model.held_out_groups() == {"g5"} and "g5" not in model.seen_groups()
    assert {"bias", "head_cos", "visual_cos"} <= set(model.coef)
    model.save(tmp_path / "coh")
    again = load_coherence(tmp_path / "coh", catalog)
    logits = again.pair_logits(catalog, ids[:5])
    assert logits.shape == (5, 5) and np.allclose(logits, logits.T, atol=1e-5)
    with pytest.raises(Exception, match="disjoint"):
        train_coherence(catalog, groups, train_groups=["g0"], val_groups=["g0"])


def test_match_lines_carry_the_whole_look(tmp_path):
    from shopthelook.batch import match_scene
    from tests.test_web_helpers import build_catalog, build_pipeline, write_scenes

    catalog = build_catalog(tmp_path)
    scenes = write_scenes(tmp_path / "scenes", catalog)
    pipeline = build_pipeline(catalog)
    record, found = match_scene(
        pipeline,
        "room-a",
        str(scenes / "room-a.png"),
        top_k=3,
        whole_look=WholeLookChooser(catalog),
    )
    assert found == 2
    look = record["whole_look"]
    assert look["method"] == "visual" and look["message"] == NO_MODEL
    assert [p["object"] for p in look["products"]] == [0, 1]
    assert look["products"][0]["product_id"] == record["objects"][0]["products"][0]["product_id"]


def test_the_cli_refuses_whole_look_on_a_cluster_and_bad_worker_counts(capsys, tmp_path):
    from tests.helpers import run_cli

    code, _, err = run_cli(
        capsys, "match", "--catalog", tmp_path, "--scenes", tmp_path, "--out", tmp_path / "o",
        "--whole-look", "--scheduler", "local",
    )  # fmt: skip
    assert code != 0 and "--whole-look runs on this machine" in err
    for n, words in ((0, "at least 1 worker"), (10_000, "cores x 4")):
        code, _, err = run_cli(capsys, "serve", "--catalog", tmp_path, "--workers", n)
        assert code != 0 and words in err
