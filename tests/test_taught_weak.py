"""Weak labels: real scenes whose products are listed (no boxes) teach the detector too."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from catalog.taught.cutout import cut_out
from catalog.taught.model import fit_classifier
from catalog.taught.regions import iou_matrix
from catalog.taught.scenes import CatalogCutout, SceneRules, synthesize
from catalog.taught.weak import (
    LabelledScene,
    WeakLabelRules,
    listed_products,
    product_vectors,
    weak_regions,
)
from tests.test_taught import noise_room, product_photo

RED, BLUE = (220, 40, 40), (40, 40, 220)
#: a cell of the 1/3 window grid of a 256 x 192 scene: a fixed window proposes exactly it
SQUARE = (85.33, 64.0, 170.67, 128.0)


@pytest.fixture(scope="module")
def featurizer():
    from catalog.taught.regions import RegionConfig, RegionFeaturizer
    from shopthelook.core.taxonomy import load_taxonomy

    return RegionFeaturizer(
        ["a", "b"], load_taxonomy(), weights=None, config=RegionConfig(image_size=256), threads=1
    )


@pytest.fixture(scope="module")
def synthetic_classifier(featurizer):
    """A classifier fitted on drawn synthetic scenes: a red square is a, a blue disc b."""
    from catalog.taught.fit import FitSettings, scene_regions

    cuts = [
        CatalogCutout("A1", "a", cut_out(product_photo("square", RED))),
        CatalogCutout("B1", "b", cut_out(product_photo("disc", BLUE))),
    ]
    rules = SceneRules(scene_size=256, min_products=1, max_products=2, min_area=0.05)
    fit = FitSettings(scene_rules=rules)
    rng = np.random.default_rng(0)
    xs, ys = [], []
    for seed in range(8):
        scene = synthesize(noise_room(seed, (256, 192)), cuts, rng, rules)
        x, y = scene_regions(featurizer, scene, ["a", "b"], fit, rng)
        xs.append(x)
        ys.append(y)
    return fit_classifier(np.concatenate(xs), np.concatenate(ys), ["a", "b"], regularisation=0.5)


def scene_with_squares(seed: int, squares) -> Image.Image:
    """A "real" room: noise with solid squares drawn in cells of the 1/3 window grid."""
    image = noise_room(seed, (256, 192))
    for (x1, y1, x2, y2), colour in squares:
        image.paste(colour, (round(x1) + 6, round(y1) + 4, round(x2) - 6, round(y2) - 4))
    return image


def real_scene_with_a_red_square(seed: int) -> Image.Image:
    return scene_with_squares(seed, [(SQUARE, RED)])


def overlaps(box, cell) -> bool:
    return iou_matrix(np.array([box], np.float32), np.array([cell], np.float32))[0, 0] >= 0.5


def test_a_listed_category_is_learned_where_it_stands_in_the_real_scene(
    featurizer, synthetic_classifier
):
    scenes = [LabelledScene(real_scene_with_a_red_square(s), (("A1", "a"),)) for s in (50, 51)]
    rules = WeakLabelRules(copies=3, near_iou=0.6)
    found = weak_regions(featurizer, synthetic_classifier, scenes, rules)
    assert found.positives > 0 and found.positives % 3 == 0
    assert set(found.y.tolist()) == {1}  # only the listed category, never b or background
    assert found.x.shape == (found.positives, featurizer.layout.width)
    for picked in found.chosen:
        assert [c for c, _ in picked] == ["a"]
        assert overlaps(picked[0][1], SQUARE), picked


class TwoRegions:
    """A featurizer stub: two proposals whose visual features point along axes 0 and 1."""

    def __init__(self):
        from catalog.taught.regions import FeatureLayout

        self.layout = FeatureLayout(("a",))

    def propose(self, image):
        boxes = np.array([[0, 0, 100, 100], [100, 100, 200, 200]], np.float32)
        return boxes, np.zeros(2), np.full(2, -2)

    def features(self, image, boxes, conf=None, columns=None):
        x = np.zeros((len(boxes), self.layout.width), np.float32)
        x[0, 0] = x[1, 1] = 1.0
        return x


class FirstIsLikelier:
    categories = ("a",)

    def predict_proba(self, x):
        return np.array([[0.4, 0.6], [0.8, 0.2]])  # background, a


def test_the_listed_products_own_photo_tells_which_of_two_objects_it_is():
    scene = [LabelledScene(Image.new("RGB", (200, 200)), (("P", "a"),))]
    looks_like_second = {"P": np.eye(1, 1280, 1)[0]}

    def chosen(vectors):
        found = weak_regions(
            TwoRegions(), FirstIsLikelier(), scene, WeakLabelRules(), vectors=vectors
        )
        return found.chosen[0][0][1]

    assert chosen(None) == (0.0, 0.0, 100.0, 100.0)  # by category alone: the likelier region
    # log .2 + 15 * 1 beats log .6 + 15 * 0: the region that looks like the product's photo
    assert chosen(looks_like_second) == (100.0, 100.0, 200.0, 200.0)


def test_unknown_categories_and_out_of_bounds_regions_give_no_positives(
    featurizer, synthetic_classifier
):
    image = real_scene_with_a_red_square(52)
    unknown = [LabelledScene(image, (("S1", "sofa"),))]
    assert weak_regions(featurizer, synthetic_classifier, unknown, WeakLabelRules()).positives == 0
    tiny = WeakLabelRules(max_area=0.001)  # no proposal is that small
    listed = [LabelledScene(image, (("A1", "a"),))]
    assert weak_regions(featurizer, synthetic_classifier, listed, tiny).positives == 0


def test_listed_products_keep_known_products_of_learned_categories_once():
    category_of = {"P1": "lamp", "P2": "rug", "P3": "other"}
    got = listed_products(["P1", "P3", "P9", "P1"], category_of, learned=["lamp", "rug"])
    assert got == (("P1", "lamp"),)


def test_an_unreadable_product_photo_is_left_out(featurizer, tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    product_photo("square", RED).save(tmp_path / "ok.png")
    images = {"BAD": tmp_path / "bad.png", "OK": tmp_path / "ok.png"}
    vectors = product_vectors(featurizer, images, WeakLabelRules())
    assert list(vectors) == ["OK"] and np.linalg.norm(vectors["OK"]) == pytest.approx(1.0)


def _scene_folder(tmp_path, count=12):
    from catalog.taught import scene_split

    folder = tmp_path / "scenes"
    folder.mkdir()
    for i in range(count):
        noise_room(i).save(folder / f"room{i}.png")
    split = {f"room{i}": scene_split(f"room{i}") for i in range(count)}
    assert {"train", "heldout"} <= set(split.values())
    return folder, split


def test_held_out_scenes_never_lend_their_products_to_the_fit(tmp_path):
    from shopthelook.commands.detector_fit import background_scenes
    from shopthelook.core.config import load_settings

    folder, split = _scene_folder(tmp_path)
    pairs = pd.DataFrame(
        {"scene_id": list(split), "product_id": [f"P{i}" for i in range(len(split))]}
    )
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    args = argparse.Namespace(
        fit_scenes_source=str(folder), dataset=None, scene_products=str(tmp_path / "pairs.csv")
    )
    paths, shown = background_scenes(args, load_settings())
    train = sorted(s for s, part in split.items() if part == "train")
    assert sorted(p.split("/")[-1][:-4] for p in paths) == train
    assert sorted(p.split("/")[-1][:-4] for p in shown) == train
    assert all(len(products) == 1 for products in shown.values())


def test_scene_products_naming_no_training_scene_are_refused(tmp_path):
    from shopthelook.commands.detector_fit import background_scenes
    from shopthelook.core.config import load_settings
    from shopthelook.core.errors import ShopTheLookError

    folder, split = _scene_folder(tmp_path)
    held = [s for s, part in split.items() if part == "heldout"]
    pd.DataFrame({"scene_id": held, "product_id": "P1"}).to_csv(tmp_path / "p.csv", index=False)
    args = argparse.Namespace(
        fit_scenes_source=str(folder), dataset=None, scene_products=str(tmp_path / "p.csv")
    )
    with pytest.raises(ShopTheLookError, match="none of its scene ids is a training scene"):
        background_scenes(args, load_settings())


def test_fit_reports_and_uses_the_weakly_labelled_scenes(tmp_path):
    from catalog import Catalog
    from catalog.taught import FitSettings, fit_detector
    from embedder import create_embedder
    from shopthelook.core.config import load_settings
    from shopthelook.core.taxonomy import load_taxonomy

    (tmp_path / "img").mkdir()
    rows = []
    for i in range(4):
        shape, colour, category = ("square", RED, "lamp") if i % 2 else ("disc", BLUE, "rug")
        path = tmp_path / "img" / f"{i}.png"
        product_photo(shape, colour).save(path)
        rows.append({"product_id": f"P{i}", "image": str(path), "category": category})
    settings = load_settings(backbone="hvf", detector_weights=None)
    taxonomy = load_taxonomy()
    catalog = Catalog.build(
        pd.DataFrame(rows),
        embedder=create_embedder(settings),
        taxonomy=taxonomy,
        out=tmp_path / "cat",
        settings=settings,
    )
    rooms = []
    for seed in range(3):
        path = tmp_path / f"room{seed}.png"
        real_scene_with_a_red_square(seed).save(path)
        rooms.append(str(path))
    rules = SceneRules(scene_size=256, min_products=1, max_products=2, min_area=0.05)
    fit = FitSettings(scenes=4, scene_rules=rules)
    shown = {rooms[0]: ["P1", "P404"], rooms[1]: ["P1"]}  # P404 is not in the catalog
    fitted, _, _ = fit_detector(
        catalog, rooms, settings=settings, taxonomy=taxonomy, fit=fit, scene_products=shown
    )
    weak = fitted.manifest["weakly_labelled"]
    assert weak["scenes"] == 2 and weak["positives"] >= 2
    assert fitted.manifest["training"]["weak_labels"]["copies"] == 3
    plain, _, _ = fit_detector(catalog, rooms, settings=settings, taxonomy=taxonomy, fit=fit)
    assert plain.manifest["weakly_labelled"] == {"scenes": 0, "positives": 0}
    assert not np.allclose(plain.classifier.coef, fitted.classifier.coef)
