"""Crop -> product adaptation: pair mining rules, scene-like augmentation, groups, recall."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from embedder.adaptation import crop_recall, mine_crop_pairs, pair_groups, scene_like
from shopthelook.core.errors import DatasetError
from shopthelook.core.types import Box, Detection
from tests.conftest import draw_image


class FakeDetector:
    def __init__(self, by_size):
        self.by_size = by_size  # image width -> detections

    def detect(self, image):
        return self.by_size[image.width]


def _det(cat, x=0):
    return Detection(Box(x, 0, x + 20, 20), cat, 0.9, cat, (cat,))


def test_mining_needs_one_product_and_one_detection_of_the_category(tmp_path):
    for i, w in enumerate((60, 61, 62)):
        draw_image(i, (w, 40)).save(tmp_path / f"r{i}.png")
    scenes = pd.DataFrame(
        {"scene_id": ["r0", "r1", "r2"], "image": [str(tmp_path / f"r{i}.png") for i in range(3)]}
    )
    pairs = pd.DataFrame(
        {
            "scene_id": ["r0", "r0", "r1", "r1", "r2"],
            "product_id": ["chair1", "sofa1", "chair2", "chair3", "chair4"],
        }
    )
    category = {
        "chair1": "chair",
        "sofa1": "sofa",
        "chair2": "chair",
        "chair3": "chair",
        "chair4": "chair",
    }
    detector = FakeDetector(
        {
            60: [_det("chair"), _det("sofa", 30), _det("sofa", 35)],  # chair: 1 and 1 -> pair
            61: [_det("chair")],  # two chairs in the room -> ambiguous
            62: [_det("chair"), _det("chair", 30)],  # two chair detections -> ambiguous
        }
    )
    mined = mine_crop_pairs(scenes, pairs, category, detector)
    assert [(m.scene_id, m.product_id, m.category) for m in mined] == [("r0", "chair1", "chair")]
    assert isinstance(mined[0].crop, Image.Image) and mined[0].crop.size[0] >= 20
    with pytest.raises(DatasetError, match="missing column"):
        mine_crop_pairs(scenes.rename(columns={"image": "path"}), pairs, category, detector)


def test_scene_like_replaces_the_white_background_and_varies():
    product = Image.new("RGB", (120, 100), (255, 255, 255))
    product.paste((200, 30, 30), (40, 30, 80, 70))  # a red object on studio white
    backgrounds = [Image.new("RGB", (64, 64), (20, 90, 20))]
    rng = np.random.default_rng(0)
    outs = [scene_like(product, backgrounds, rng) for _ in range(4)]
    for out in outs:
        a = np.asarray(out, dtype=np.float32)
        assert max(out.size) <= 120 * 2 and min(out.size) >= 16
        # little studio white survives: the backdrop became the (green) room patch
        assert np.mean(a.min(axis=2) > 230) < 0.05
        assert a[..., 0].max() > 100  # the red object is still there
    assert len({o.size for o in outs}) > 1  # random scale


def test_pair_groups_and_crop_recall_brute_force():
    rng = np.random.default_rng(0)
    pv = rng.normal(size=(6, 4)).astype(np.float32)
    pv /= np.linalg.norm(pv, axis=1, keepdims=True)
    ids = [f"p{i}" for i in range(6)]
    x, labels = pair_groups(
        ids, pv, [("p1", pv[1] * 0.5), ("p3", pv[3]), ("p3", pv[2]), ("zz", pv[0])]
    )
    assert labels.tolist() == ["p1", "p1", "p3", "p3", "p3"]
    np.testing.assert_allclose(x[0], pv[1])
    with pytest.raises(DatasetError, match="two products"):
        pair_groups(ids, pv, [("p1", pv[1])])

    cats = ["a", "a", "a", "b", "b", "b"]
    crops = pv[[0, 4]] + 0.01
    got = crop_recall(crops, ["p0", "p5"], ["a", "b"], pv, ids, cats, k=1)
    # brute force: crop 0 nearest in category a is p0 (hit); crop 1 nearest in b is p4 (miss)
    expected = []
    for vec, pid, cat in zip(crops, ["p0", "p5"], ["a", "b"], strict=True):
        members = [i for i in range(6) if cats[i] == cat]
        best = max(members, key=lambda i: float(pv[i] @ vec))
        expected.append(ids[best] == pid)
    assert got == pytest.approx(np.mean(expected)) == 0.5
