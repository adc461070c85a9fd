"""Catalog-taught detection: cut-outs, pasting, the region classifier, the fallbacks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from catalog.taught.cutout import Cutout, cut_out, mask_box, paste
from catalog.taught.model import fit_classifier
from catalog.taught.scenes import CatalogCutout, SceneRules, synthesize
from catalog.taught.split import scene_split, select_scenes
from shopthelook.core.types import Box


def product_photo(shape: str, colour, size=(120, 100), background=(255, 255, 255)):
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    if shape == "square":
        draw.rectangle((30, 20, 89, 79), fill=colour)  # 60 x 60
    else:
        draw.ellipse((20, 10, 99, 89), fill=colour)  # 80 x 80 disc
    return image


def noise_room(seed: int, size=(200, 150)) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(90, 170, (size[1] // 10, size[0] // 10, 3), dtype=np.uint8)
    return Image.fromarray(base).resize(size, Image.NEAREST)


def test_cut_out_finds_the_product_and_its_area():
    cut = cut_out(product_photo("square", (200, 30, 30)))
    assert cut is not None
    assert cut.image.size == (60, 60) and cut.mask.size == (60, 60)
    assert cut.area > 0.95  # a square fills its own box
    disc = cut_out(product_photo("disc", (30, 30, 200)))
    assert disc is not None and disc.image.size == (80, 80)
    assert abs(disc.area - np.pi / 4) < 0.05  # a disc covers pi/4 of its box


def test_cut_out_refuses_a_busy_background_and_uses_alpha():
    assert cut_out(noise_room(1, (120, 100))) is None
    rgba = Image.new("RGBA", (50, 40), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).rectangle((10, 10, 29, 29), fill=(0, 200, 0, 255))
    cut = cut_out(rgba)
    assert cut is not None and cut.image.size == (20, 20) and cut.area > 0.95


def test_paste_puts_the_mask_inside_the_scene():
    cut = cut_out(product_photo("disc", (30, 30, 200)))
    scene = noise_room(2)
    out, mask = paste(scene, cut, Box(150, 100, 250, 200))  # partly outside: clipped
    assert out.size == scene.size and mask.shape == (150, 200)
    box = mask_box(mask)
    assert box is not None
    assert 0 <= box.x1 < box.x2 <= 200 and 0 <= box.y1 < box.y2 <= 150
    assert box.x1 >= 150 and box.y1 >= 100
    # the pasted pixels are blue where the mask says so
    pixels = np.asarray(out)[mask]
    assert (pixels[:, 2] > 150).mean() > 0.9


def test_synthetic_scene_boxes_lie_inside_and_keep_categories():
    cuts = [
        CatalogCutout("A1", "a", cut_out(product_photo("square", (200, 30, 30)))),
        CatalogCutout("B1", "b", cut_out(product_photo("disc", (30, 30, 200)))),
    ]
    rng = np.random.default_rng(0)
    rules = SceneRules(scene_size=256)
    for seed in range(5):
        scene = synthesize(noise_room(seed), cuts, rng, rules)
        assert max(scene.image.size) == 256
        assert scene.objects
        for o in scene.objects:
            assert 0 <= o.box.x1 < o.box.x2 <= scene.image.width
            assert 0 <= o.box.y1 < o.box.y2 <= scene.image.height
            assert (o.category, o.product_id) in {("a", "A1"), ("b", "B1")}


def test_a_rug_is_laid_flat_on_the_floor():
    from catalog.taught.scenes import lay_flat

    rules = SceneRules(scene_size=256, min_products=2, max_products=2, min_visible=0.0)
    square = cut_out(product_photo("square", (200, 30, 30)))
    flat = lay_flat(square, np.random.default_rng(0), rules)
    mask = np.asarray(flat.mask) > 127
    low, high = rules.flat_squash
    assert flat.image.width == square.image.width
    assert low * square.image.height - 1 <= flat.image.height <= high * square.image.height + 1
    rows = mask.sum(axis=1)
    assert rows[1] < rows[-2]  # tapered: the far edge is narrower than the near one
    assert 0 < mask.mean() < 1

    rng = np.random.default_rng(1)
    for seed in range(6):
        scene = synthesize(noise_room(seed), [CatalogCutout("R1", "rug", square)], rng, rules)
        assert scene.objects
        for rug in scene.objects:
            assert rug.box.y2 >= 0.7 * scene.image.height  # on the floor
            assert rug.box.width > rug.box.height  # lying down, not standing up


def test_room_split_is_fixed_and_disjoint():
    ids = [f"room-{i}" for i in range(200)]
    train, held = select_scenes(ids, "train"), select_scenes(ids, "heldout")
    assert not set(train) & set(held) and len(train) + len(held) == 200
    assert 0.45 < len(train) / 200 < 0.75
    assert all(scene_split(s) == "train" for s in train)
    with pytest.raises(ValueError):
        select_scenes(ids, "test")


@pytest.fixture(scope="module")
def drawn_featurizer():
    from catalog.taught.regions import RegionConfig, RegionFeaturizer
    from shopthelook.core.taxonomy import load_taxonomy

    return RegionFeaturizer(
        ["a", "b"], load_taxonomy(), weights=None, config=RegionConfig(image_size=256), threads=1
    )


@pytest.mark.parametrize("size", [(320, 240), (200, 410)])
def test_openvino_scene_features_equal_pytorch(size):
    pytest.importorskip("openvino")
    from catalog.taught.regions import RegionConfig, RegionFeaturizer
    from shopthelook.core.taxonomy import load_taxonomy

    config = RegionConfig(image_size=256)
    made = {
        runtime: RegionFeaturizer(
            ["a"], load_taxonomy(), weights=None, config=config, threads=1, runtime=runtime
        )
        for runtime in ("torch", "openvino")
    }
    assert made["openvino"].feature_map.name == "openvino"
    image = noise_room(3).resize(size)
    boxes = np.array([[0, 0, size[0], size[1]], [10, 20, 120, 150]], np.float32)
    torch_x = made["torch"].features(image, boxes)
    openvino_x = made["openvino"].features(image, boxes)
    assert np.abs(torch_x).max() > 0.1
    np.testing.assert_allclose(openvino_x, torch_x, atol=1e-4)


def test_classifier_learns_two_drawn_categories_apart(drawn_featurizer):
    from catalog.taught.detector import TaughtDetector
    from catalog.taught.fit import FitSettings, scene_regions
    from shopthelook.core.taxonomy import load_taxonomy

    cuts = [
        CatalogCutout("A1", "a", cut_out(product_photo("square", (220, 40, 40)))),
        CatalogCutout("B1", "b", cut_out(product_photo("disc", (40, 40, 220)))),
    ]
    rules = SceneRules(scene_size=256, min_products=1, max_products=2, min_area=0.05)
    fit = FitSettings(scene_rules=rules)
    rng = np.random.default_rng(0)
    xs, ys = [], []
    for seed in range(8):
        x, y = scene_regions(
            drawn_featurizer, synthesize(noise_room(seed), cuts, rng, rules), ["a", "b"], fit, rng
        )
        xs.append(x)
        ys.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert {0, 1, 2} <= set(y.tolist())
    classifier = fit_classifier(x, y, ["a", "b"], regularisation=0.5)
    detector = TaughtDetector(drawn_featurizer, classifier, load_taxonomy(), min_score=0.3)
    right = total = 0
    for seed in range(100, 106):  # new rooms
        scene = synthesize(noise_room(seed), cuts, rng, rules)
        for o in scene.objects:
            named = detector.name_region(scene.image, o.box)
            total += 1
            right += named is not None and named.category == o.category
    assert total >= 6 and right / total >= 0.8


def test_zero_shot_design_needs_no_training():
    from catalog.taught.regions import FeatureLayout

    layout = FeatureLayout(("a", "b"))
    x = np.zeros((2, layout.width), np.float32)
    x[0, layout.imagenet.start + 1] = 0.9  # ImageNet says b
    x[1, layout.yolo.start] = 0.7  # YOLO says a
    p = fit_classifier(np.zeros((0, 0)), np.zeros(0, int), ["a", "b"], design="zero-shot")
    probs = p.predict_proba(x)
    assert probs.argmax(axis=1).tolist() == [2, 1]


def test_a_sliver_is_not_an_object_the_next_best_region_is():
    from catalog.taught.detector import TaughtDetector
    from shopthelook.core.taxonomy import load_taxonomy

    classifier = fit_classifier(np.zeros((0, 0)), np.zeros(0, int), ["a"], design="zero-shot")
    boxes = np.array([[10, 10, 14, 40], [50, 50, 150, 140]], np.float32)  # 4x30 px, 100x90
    probs = np.array([[0.1, 0.9], [0.3, 0.7]])  # background, a

    def pick(min_area):
        detector = TaughtDetector(
            None, classifier, load_taxonomy(), min_score=0.1, per_category=1, min_area=min_area
        )
        return [(d.category, d.box.width) for d in detector.select(boxes, probs, (200, 160))]

    assert pick(0.0) == [("a", 4.0)]  # the sliver wins on score
    assert pick(0.01) == [("a", 100.0)]  # 120 px < 1% of 32,000: the larger region instead


def test_likeness_to_a_catalog_product_picks_the_region_that_looks_like_one():
    from catalog.taught.detector import TaughtDetector
    from shopthelook.core.taxonomy import load_taxonomy

    classifier = fit_classifier(np.zeros((0, 0)), np.zeros(0, int), ["a"], design="zero-shot")
    boxes = np.array([[0, 0, 200, 160], [50, 50, 110, 120], [5, 5, 9, 9]], np.float32)
    probs = np.array([[0.2, 0.8], [0.4, 0.6], [0.99, 0.01]])  # a window wins on probability
    product = np.array([1.0, 0.0])
    visual = np.array([[0.2, 1.0], [1.0, 0.1], [1.0, 0.0]], np.float32)  # region 1 looks like it
    seen = []

    def likeness(unit, category):
        seen.append((category, len(unit)))
        return unit @ product

    def pick(weight):
        detector = TaughtDetector(
            None, classifier, load_taxonomy(), min_score=0.1, per_category=1,
            likeness=likeness, likeness_weight=weight,
        )  # fmt: skip
        return [d.box.width for d in detector.select(boxes, probs, (200, 160), visual)]

    assert pick(0.0) == [200.0] and not seen  # probability alone
    assert pick(2.0) == [60.0]  # log .6 + 2 x .995 beats log .8 + 2 x .196
    assert seen == [("a", 2)]  # the region under min_score is never looked up


def test_uncategorised_catalog_cannot_be_taught_and_still_answers(tmp_path):
    from catalog import Catalog
    from catalog.taught import fit_detector
    from detector.base import Detector
    from embedder import create_embedder
    from shopthelook.core.config import load_settings
    from shopthelook.core.errors import CatalogError
    from shopthelook.core.taxonomy import load_taxonomy
    from shopthelook.core.types import Detection
    from shopthelook.pipeline import ShopTheLook
    from tests.conftest import draw_image

    (tmp_path / "img").mkdir()
    rows = []
    for i in range(6):
        draw_image(i, (64, 64)).save(tmp_path / "img" / f"{i}.png")
        # no category at all: a blank category column (a table without one is refused upstream)
        rows.append(
            {"product_id": f"P{i}", "image": str(tmp_path / "img" / f"{i}.png"), "category": ""}
        )
    settings = load_settings(backbone="hvf")
    catalog = Catalog.build(
        pd.DataFrame(rows),
        embedder=create_embedder(settings),
        taxonomy=load_taxonomy(),
        out=tmp_path / "cat",
        settings=settings,
    )
    assert catalog.categories() == ["other"]
    with pytest.raises(CatalogError, match="no categories to learn"):
        fit_detector(catalog, [], settings=settings, taxonomy=load_taxonomy())

    class ChairFinder(Detector):
        name = "chairs"

        def detect(self, image):
            return [Detection(Box(0, 0, 30, 30), "chair", 0.9, "chair", ("chair", "armchair"))]

    stl = ShopTheLook(catalog, settings, detector=ChairFinder())
    result = stl.shop_the_look(draw_image(9, (96, 80)), top_k=3)
    assert result.objects and len(result.objects[0].products) == 3


def test_cutout_area_property():
    cut = Cutout(Image.new("RGB", (4, 4)), Image.fromarray(np.full((4, 4), 255, np.uint8)))
    assert cut.area == pytest.approx(1.0)


@pytest.mark.shared
def test_fitted_ikea_catalog_finds_a_lamp_or_rug_in_a_held_out_room(ikea_root, yolo_weights):
    from catalog.taught import scene_split
    from shopthelook.core.config import load_settings
    from shopthelook.core.datasets import load_pairs, load_products, load_scenes
    from shopthelook.core.taxonomy import load_taxonomy
    from shopthelook.pipeline import ShopTheLook
    from tests.taught_helpers import taught_catalog

    folder = taught_catalog(ikea_root, yolo_weights)
    settings = load_settings(
        backbone="hvf", data_root=ikea_root.parent, detector_weights=str(yolo_weights), threads=1
    )
    stl = ShopTheLook(folder, settings)
    assert stl.describe()["detector"] == "taught-complement" and stl.detector_note is None
    taxonomy = load_taxonomy()
    products = load_products("ikea", data_root=ikea_root.parent)
    category = dict(zip(products["product_id"], taxonomy.categorize_table(products)))
    pairs = load_pairs("ikea", data_root=ikea_root.parent)
    pairs = pairs[pairs["product_id"].map(category).isin(["lamp", "rug"])]
    scenes = load_scenes("ikea", data_root=ikea_root.parent)
    image = dict(zip(scenes["scene_id"].astype(str), scenes["image"]))
    # the full IKEA fit covers lamps in 16% and rugs in 6% of their held-out rooms: 8 rooms
    held = [s for s in dict.fromkeys(pairs["scene_id"]) if scene_split(s) == "heldout"][:8]
    assert held
    found = set()
    for scene in held:
        result = stl.shop_the_look(image[scene], top_k=3)
        found |= {o.detection.category for o in result.objects}
        assert all(o.products for o in result.objects)
    assert found & {"lamp", "rug"}, found


def test_a_detector_fitted_for_another_catalog_is_refused():
    from types import SimpleNamespace

    from catalog.taught.files import FittedDetector, check_against_catalog
    from catalog.taught.regions import RegionConfig
    from shopthelook.core.errors import CatalogError

    classifier = fit_classifier(np.zeros((0, 0)), np.zeros(0, int), ["lamp"], design="zero-shot")
    fitted = FittedDetector(
        classifier, RegionConfig(), {"catalog_backbone": "yolo", "catalog_categories": ["lamp"]}
    )

    def catalog(backbone, categories):
        return SimpleNamespace(backbone=backbone, path="cat", categories=lambda: categories)

    check_against_catalog(fitted, catalog("yolo", ["lamp", "other"]), "no-such-weights")
    with pytest.raises(CatalogError, match="backbone 'yolo'.*refit"):
        check_against_catalog(fitted, catalog("hvf", ["lamp"]), "no-such-weights")
    with pytest.raises(CatalogError, match="new: rug.*refit"):
        check_against_catalog(fitted, catalog("yolo", ["lamp", "rug"]), "no-such-weights")


def test_complement_keeps_coco_objects_and_adds_only_unseen_categories():
    from catalog.taught.detector import ComplementDetector
    from shopthelook.core.types import Box, Detection

    def det(category, score, searched):
        return Detection(Box(0, 0, 10, 10), category, score, category, searched)

    class Fixed:
        def __init__(self, found, max_objects=3):
            self.found, self.max_objects = found, max_objects

        def detect(self, image, raw=None, *, limit=None):
            return list(self.found)

        def name_region(self, image, box):
            return det("lamp", 0.9, ("lamp",))

    coco = Fixed([det("chair", 0.9, ("chair", "armchair"))])
    taught = Fixed(
        [
            det("armchair", 0.8, ("armchair",)),  # already searched by the COCO chair
            det("lamp", 0.6, ("lamp",)),
            det("rug", 0.5, ("rug",)),
            det("storage", 0.4, ("storage",)),  # over max_objects
        ]
    )
    found = ComplementDetector(coco, taught).detect(None)
    assert [d.category for d in found] == ["chair", "lamp", "rug"]
    assert ComplementDetector(coco, taught).name_region(None, Box(0, 0, 5, 5)).category == "lamp"

    # with base_per_category=1 a second and third chair wait until every category had a slot
    chairs = Fixed([det("chair", 0.9 - i / 10, ("chair",)) for i in range(3)], max_objects=4)
    lamp = Fixed([det("lamp", 0.6, ("lamp",)), det("rug", 0.5, ("rug",))], max_objects=4)
    capped = ComplementDetector(chairs, lamp, base_per_category=1).detect(None)
    assert [d.category for d in capped] == ["chair", "lamp", "rug", "chair"]
    assert capped[3].score == pytest.approx(0.8)
    uncapped = ComplementDetector(chairs, lamp, base_per_category=0).detect(None)
    assert [d.category for d in uncapped] == ["chair", "chair", "chair", "lamp"]

    # two taught storage objects (its per_category allowed them) both stay; a taught bed
    # searches bedding, so a taught bedding object after it is not added
    two = Fixed(
        [
            det("storage", 0.7, ("storage",)),
            det("bed", 0.6, ("bed", "bedding")),
            det("storage", 0.5, ("storage",)),
            det("bedding", 0.4, ("bedding",)),
        ],
        max_objects=5,
    )
    found = ComplementDetector(Fixed([], max_objects=5), two).detect(None)
    assert [d.category for d in found] == ["storage", "bed", "storage"]
    # a second storage object waits until the lamp has its slot
    second = Fixed([det("storage", 0.7, ("storage",)), det("storage", 0.6, ("storage",)),
                    det("lamp", 0.5, ("lamp",))], max_objects=2)  # fmt: skip
    found = ComplementDetector(Fixed([], max_objects=2), second).detect(None)
    assert [d.category for d in found] == ["storage", "lamp"]


def test_taught_mode_is_checked():
    from shopthelook.core.config import load_settings
    from shopthelook.core.errors import ConfigError

    assert load_settings(taught_mode="complement").taught_mode == "complement"
    with pytest.raises(ConfigError, match="taught_mode"):
        load_settings(taught_mode="union")
