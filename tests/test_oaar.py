"""OAAR text directions on a tiny random open_clip; label directions; AUC; boost; save/load."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pytest

from embedder.base import Backbone, l2_normalize
from embedder.oaar import (
    CIFAR100_CLASSES,
    Directions,
    boost,
    label_directions,
    load_directions,
    oaar_directions,
    oaar_prompts,
    ranking_auc,
)
from shopthelook.core.errors import ConfigError, HeadError


class CountingTexts:
    """Wraps the registry's tiny random open_clip and records the prompts it embeds."""

    def __init__(self, backbone: Backbone) -> None:
        self.backbone, self.text_calls = backbone, []
        self.name, self.dim, self.has_text = backbone.name, backbone.dim, backbone.has_text

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.text_calls += list(texts)
        return self.backbone.embed_texts(texts)


@pytest.fixture(scope="module")
def tiny_clip():
    from embedder.factory import create_backbone

    return CountingTexts(create_backbone("clip:stl-tiny-test/random"))


def test_prompts_use_the_right_article():
    assert oaar_prompts("intriguing", "apple") == (
        "an intriguing photo of an apple",
        "a photo of an apple",
    )
    assert oaar_prompts("cozy", "bed") == ("a cozy photo of a bed", "a photo of a bed")
    assert len(CIFAR100_CLASSES) == len(set(CIFAR100_CLASSES)) == 100


def test_oaar_directions_mechanics(tiny_clip):
    tiny_clip.text_calls.clear()
    d = oaar_directions(tiny_clip, ["cozy", "intriguing"])
    dim = tiny_clip.dim
    assert d.vectors.shape == (2, dim) and d.kind == "oaar" and d.backbone == tiny_clip.name
    assert np.allclose(np.linalg.norm(d.vectors, axis=1), 1.0, atol=1e-5)
    # every CIFAR-100 class, once plain and once per adjective
    assert len(tiny_clip.text_calls) == 100 * 3
    assert "a cozy photo of a wardrobe" in tiny_clip.text_calls
    # the direction is the normalised mean of the prompt differences
    classes = ["bed", "apple", "sea"]
    small = oaar_directions(tiny_clip, ["cozy"], classes=classes)
    diffs = [
        tiny_clip.embed_texts([oaar_prompts("cozy", c)[0]])[0]
        - tiny_clip.embed_texts([oaar_prompts("cozy", c)[1]])[0]
        for c in classes
    ]
    expected = l2_normalize(np.mean(diffs, axis=0)[None])[0]
    np.testing.assert_allclose(small.vectors[0], expected, atol=1e-5)
    # an image's score is its dot product with the direction
    x = l2_normalize(np.random.default_rng(0).normal(size=(5, dim)))
    np.testing.assert_allclose(d.score(x, "Cozy"), x @ d.vectors[0], atol=1e-6)
    assert d.scores(x).shape == (5, 2)


def test_oaar_refuses_backbone_without_text():
    class NoText(Backbone):
        name, dim = "hvf", 4

        def embed_images(self, images, *, batch_size=16, show_progress=False):
            return np.zeros((len(images), 4), np.float32)

    with pytest.raises(ConfigError, match="text tower"):
        oaar_directions(NoText(), ["cozy"])


def _labelled(n_per=40, seed=0):
    """Items in 4 categories (strong category offsets); attribute 'dark' adds a fixed vector."""
    rng = np.random.default_rng(seed)
    dim = 24
    dark = l2_normalize(rng.normal(size=(1, dim)))[0]
    cat_centres = rng.normal(size=(4, dim)) * 3
    cats = np.repeat(np.arange(4), n_per)
    is_dark = rng.random(len(cats)) < np.array([0.2, 0.5, 0.7, 0.4])[cats]  # unequal mixes
    x = cat_centres[cats] + rng.normal(size=(len(cats), dim)) + 3.0 * is_dark[:, None] * dark
    attrs = np.where(is_dark, "dark", "light")
    return l2_normalize(x), attrs, cats.astype(str), dark


def test_label_directions_recover_the_attribute_and_rank_held_out_items():
    x, attrs, cats, dark = _labelled()
    train = np.arange(len(x)) % 3 != 0
    d = label_directions(x[train], attrs[train], cats[train], backbone="synthetic")
    assert d.names == ["dark", "light"] and d.kind == "labels"
    # object-agnostic: the direction is close to the planted one despite the category offsets
    assert float(d.vector("dark") @ dark) > 0.85
    test = ~train
    # ranked within each category (the attribute is what differs there), averaged
    aucs = [ranking_auc(d.score(x[test & (cats == c)], "dark"), attrs[test & (cats == c)] == "dark")
            for c in np.unique(cats)]  # fmt: skip
    assert np.mean(aucs) > 0.85
    # without the per-category means, the category mix leaks into the direction
    naive = label_directions(x[train], attrs[train], None, backbone="synthetic")
    assert float(naive.vector("dark") @ dark) < float(d.vector("dark") @ dark)


def test_ranking_auc_against_pair_counting():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, 30).astype(float)  # many ties
    pos = rng.random(30) < 0.4
    pairs = [(1.0 if s > t else 0.5 if s == t else 0.0) for s in scores[pos] for t in scores[~pos]]
    assert ranking_auc(scores, pos) == pytest.approx(np.mean(pairs))


def test_boost_standardises_and_reorders():
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    adj = np.array([-1.0, 0.0, 1.0], np.float32)
    out = boost(scores, adj, weight=0.2)
    std = adj.std()
    np.testing.assert_allclose(out, scores + 0.2 * (adj - adj.mean()) / std, atol=1e-6)
    assert np.argmax(boost(scores, adj, weight=1.0)) == 2
    np.testing.assert_allclose(
        boost(scores, np.ones(3), weight=1.0), scores
    )  # no contrast, no change


def test_directions_save_load_and_bad_folders(tmp_path):
    x, attrs, cats, _ = _labelled()
    d = label_directions(x, attrs, cats, backbone="yolo")
    folder = d.save(tmp_path / "d")
    again = load_directions(folder)
    assert again.names == d.names and np.allclose(again.vectors, d.vectors)
    again.check_space("yolo", "identity", 24)
    with pytest.raises(HeadError, match="rebuild"):
        again.check_space("hvf", "identity", 24)
    np.testing.assert_allclose(
        again.boost([0.5] * 5, x[:5], "dark"), boost(np.full(5, 0.5), x[:5] @ d.vector("dark"))
    )
    with pytest.raises(ConfigError, match="unknown adjective 'shiny'"):
        again.score(x, "shiny")
    with pytest.raises(HeadError, match="24-d"):
        again.score(x[:, :10], "dark")

    (folder / "directions.npy").write_bytes(b"garbage")
    with pytest.raises(HeadError, match="cannot be read"):
        load_directions(folder)
    folder = d.save(tmp_path / "d2")
    meta = json.loads((folder / "directions.json").read_text())
    meta["names"] = ["dark"]
    (folder / "directions.json").write_text(json.dumps(meta))
    with pytest.raises(HeadError, match="shape"):
        load_directions(folder)
    with pytest.raises(HeadError, match="no directions.json"):
        load_directions(tmp_path / "nothing")
    with pytest.raises(HeadError, match="duplicate"):
        Directions(["a", "a"], np.eye(2), "labels", "b")


def test_cli_builds_oaar_directions_with_a_text_backbone(tmp_path, capsys):
    from shopthelook.cli import main

    out = tmp_path / "oaar"
    code = main(["-q", "directions", "build", "--backbone", "clip:stl-tiny-test/random",
                 "--adjectives", "cozy, vivid", "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    d = load_directions(out)
    assert d.names == ["cozy", "vivid"] and d.kind == "oaar"
    assert d.backbone == "clip:stl-tiny-test/random" and d.source["classes"] == "cifar100"
