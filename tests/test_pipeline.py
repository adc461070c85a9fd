"""The pipeline on a drawn scene with a fixed-box detector (fast), and on a real IKEA room."""

from __future__ import annotations

import pytest
from PIL import Image

from detector.base import Detector
from ranker.base import Ranker
from shopthelook.core.errors import BoxError, CatalogError, ImageError
from shopthelook.core.types import Box, Detection
from shopthelook.pipeline import NOTHING_DETECTED, ShopTheLook
from tests.conftest import draw_image
from tests.helpers import build_catalog


class FixedBoxes(Detector):
    """Reports the given boxes whatever the image (the pipeline's plumbing is under test)."""

    name = "fixed"

    def __init__(self, detections):
        self.detections = detections
        self.calls = 0

    def detect(self, image):
        self.calls += 1
        return list(self.detections)


class ReverseRanker(Ranker):
    name = "reverse"

    def rank(self, context, candidates):
        assert context.query_embedding.ndim == 1
        return list(reversed(candidates))


def scene_with_products(catalog, tmp_path):
    """A 256x128 scene: product P000 (a chair) pasted left, P001 (a sofa) right."""
    scene = Image.new("RGB", (256, 128), (240, 240, 240))
    scene.paste(Image.open(catalog.product("P000")["image"]).convert("RGB"), (20, 30))
    scene.paste(Image.open(catalog.product("P001")["image"]).convert("RGB"), (160, 30))
    path = tmp_path / "scene.png"
    scene.save(path)
    return path


@pytest.fixture
def catalog(tmp_path):
    return build_catalog(tmp_path, n=12)


def detections():
    return [
        Detection(Box(20, 30, 84, 94), "chair", 0.9, "chair", ("chair", "armchair")),
        Detection(Box(160, 30, 224, 94), "couch", 0.8, "sofa", ("sofa",)),
    ]


def test_each_object_finds_its_product_in_its_category(catalog, tmp_path):
    pipe = ShopTheLook(catalog, detector=FixedBoxes(detections()))
    pipe.settings.crop_margin = 0.0
    result = pipe.shop_the_look(scene_with_products(catalog, tmp_path), top_k=3)
    assert [o.detection.category for o in result.objects] == ["chair", "sofa"]
    chair, sofa = result.objects
    assert chair.products[0].product_id == "P000"
    assert sofa.products[0].product_id == "P001"
    assert all(p.category == "chair" for p in chair.products)
    assert all(p.category == "sofa" for p in sofa.products)
    data = result.to_dict()
    assert data["objects"][0]["box"] == [20.0, 30.0, 84.0, 94.0]
    assert set(data["objects"][0]["products"][0]) >= {"product_id", "score"}
    assert set(result.timings) >= {"load", "detect", "embed", "search", "rank"}


def test_nothing_detected_offers_the_whole_scene(catalog):
    pipe = ShopTheLook(catalog, detector=FixedBoxes([]))
    result = pipe.shop_the_look(draw_image(3, (120, 90)), top_k=4)
    assert result.message == NOTHING_DETECTED
    assert len(result.objects) == 1 and result.objects[0].detection.source == "scene"
    assert len(result.objects[0].products) == 4


def test_user_box_with_category_and_outside_the_image(catalog, tmp_path):
    detector = FixedBoxes(detections())
    pipe = ShopTheLook(catalog, detector=detector)
    path = scene_with_products(catalog, tmp_path)
    result = pipe.shop_the_look(path, box="160,30,224,94", category="sofa", top_k=2)
    assert [o.detection.source for o in result.objects] == ["user"]
    assert result.objects[0].products[0].product_id == "P001"
    inferred = pipe.shop_the_look(path, box="18,28,86,96", top_k=2)
    assert inferred.objects[0].detection.category == "chair"
    with pytest.raises(BoxError, match="outside the 256x128 image"):
        pipe.shop_the_look(path, box="300,300,400,400")


def test_ranker_reorders_candidates(catalog, tmp_path):
    pipe = ShopTheLook(catalog, detector=FixedBoxes(detections()), ranker=ReverseRanker())
    result = pipe.shop_the_look(scene_with_products(catalog, tmp_path), top_k=2)
    # the chair object sees all 4 chairs (a re-ranker gets 50 candidates); reversed, the
    # exact match comes last
    assert result.objects[0].products[0].product_id != "P000"


def test_bad_images_raise_image_errors(catalog, tmp_path):
    pipe = ShopTheLook(catalog, detector=FixedBoxes(detections()))
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty.jpg: empty file"):
        pipe.shop_the_look(empty)
    with pytest.raises(ImageError, match="no such file"):
        pipe.shop_the_look(tmp_path / "missing.jpg")


def test_embedder_must_match_the_catalog(catalog):
    from embedder import create_embedder
    from shopthelook.core.config import load_settings

    with pytest.raises(CatalogError, match="built with backbone 'hvf'"):
        ShopTheLook(
            catalog,
            detector=FixedBoxes([]),
            embedder=create_embedder(load_settings(backbone="random")),
        )


@pytest.mark.shared
def test_real_room_with_yolo(tmp_path, ikea_root, yolo_weights):
    import pandas as pd

    from catalog import Catalog
    from embedder import create_embedder
    from shopthelook.core.config import load_settings
    from shopthelook.core.datasets import load_products
    from shopthelook.core.taxonomy import load_taxonomy

    settings = load_settings(backbone="hvf", detector_weights=str(yolo_weights))
    products = load_products("ikea", data_root=ikea_root.parent)
    taxonomy = load_taxonomy()
    products = products[taxonomy.categorize_table(products).isin(["chair", "table", "plant-pot"])]
    catalog = Catalog.build(
        products.head(120),
        embedder=create_embedder(settings),
        taxonomy=taxonomy,
        out=tmp_path / "cat",
        settings=settings,
    )
    rooms = pd.read_csv(ikea_root / "rooms.csv")
    pipe = ShopTheLook(catalog, settings)
    result = pipe.shop_the_look(ikea_root / rooms.image.iloc[1], top_k=5)
    assert result.objects, "a kitchen-dining room has chairs and tables"
    for obj in result.objects:
        d = obj.detection
        assert (
            0 <= d.box.x1 < d.box.x2 <= result.width and 0 <= d.box.y1 < d.box.y2 <= result.height
        )
        # never an object without products: one whose categories the catalog lacks (a couch
        # here) searches the whole catalog
        assert obj.products
        if set(d.search_categories) & set(catalog.categories()):
            assert {p.category for p in obj.products} <= set(d.search_categories)
    import torch

    assert torch.get_num_threads() == settings.threads
