"""The yolo backbone: geometry without weights, and behaviour on the real YOLO weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from embedder import create_backbone
from embedder.yolo import PAD_VALUE, YoloBackbone, YoloFeatureConfig, letterbox
from shopthelook.core.config import Settings
from shopthelook.core.errors import BackboneError
from tests.conftest import draw_image


def test_letterbox_keeps_aspect_and_reports_the_image_part():
    canvas, valid = letterbox(Image.new("RGB", (100, 50), (255, 0, 0)), 64)
    assert canvas.shape == (64, 64, 3) and valid == (0, 16, 64, 48)
    assert (canvas[:16] == PAD_VALUE).all() and (canvas[48:] == PAD_VALUE).all()
    assert (canvas[16:48, :, 0] == 255).all()
    stretched, valid = letterbox(Image.new("RGB", (100, 50)), 64, "stretch")
    assert stretched.shape == (64, 64, 3) and valid == (0, 0, 64, 64)


@pytest.mark.parametrize(
    "kwargs", [{"pooling": "median"}, {"resize": "crop"}, {"image_size": 100}, {"layers": ()}]
)
def test_bad_feature_config_is_a_backbone_error(kwargs):
    with pytest.raises(BackboneError):
        YoloFeatureConfig(**kwargs)


@pytest.fixture(scope="module")
def settings(yolo_weights):
    return Settings().replace(detector_weights=str(yolo_weights), threads=2)


@pytest.mark.shared
def test_backbone_shares_the_detectors_model(settings):
    from shopthelook.core.yolo_model import load_yolo

    backbone = create_backbone("yolo", settings)
    assert backbone.model is load_yolo(settings.detector_weights).model
    assert not backbone.model.training


@pytest.mark.shared
def test_threads_are_restored_after_the_detector_ran(settings):
    import torch

    from shopthelook.core.yolo_model import load_yolo

    backbone = create_backbone("yolo", settings)
    load_yolo(settings.detector_weights).predict(draw_image(1, (320, 240)), verbose=False)
    backbone.embed_images([draw_image(2)])
    assert torch.get_num_threads() == settings.threads


@pytest.mark.shared
def test_bad_layer_choice_and_avgmax_width(settings):
    with pytest.raises(BackboneError, match="Detect"):
        YoloBackbone(settings.detector_weights, YoloFeatureConfig(layers=(9, 22)))
    both = YoloBackbone(settings.detector_weights, YoloFeatureConfig(layers=(9,), pooling="avgmax"))
    assert both.dim == 2 * 256
    vectors = both.embed_images([draw_image(3), draw_image(4)])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.shared
def test_a_cropped_rescaled_product_photo_finds_its_product(settings, ikea_root):
    """Retrieval sanity on real photos: a shifted, rescaled crop of a product photo must rank
    that product first among 20 products of its kind far more often than chance (1/20)."""
    from shopthelook.core.images import load_image

    products = pd.read_csv(ikea_root / "products.csv", dtype=str)
    chairs = products[products.product_type.str.contains("chair", case=False, na=False)].head(20)
    photos = [load_image(ikea_root / p) for p in chairs.image]
    queries = []
    for photo in photos:
        w, h = photo.size
        part = photo.crop((int(0.08 * w), int(0.05 * h), int(0.97 * w), int(0.93 * h)))
        queries.append(part.resize((max(1, part.width * 2 // 3), max(1, part.height * 2 // 3))))
    backbone = create_backbone("yolo", settings)
    sims = backbone.embed_images(queries, batch_size=8) @ backbone.embed_images(photos).T
    top1 = float(np.mean(np.argmax(sims, axis=1) == np.arange(len(photos))))
    assert top1 >= 0.7, top1
