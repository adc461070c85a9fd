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


# -- synthetic-scene pairs (catalog.adaptation_pairs) and look-recall from vectors ---------

COLOURS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}


def _product_photos(tmp_path):
    """A coloured block on studio white per product, one photo of a room (no plain border)
    and one "other" product; the product table the cut-outs are made from."""
    rows = []
    for name, colour in COLOURS.items():
        img = Image.new("RGB", (120, 100), (255, 255, 255))
        img.paste(colour, (30, 20, 90, 80))
        img.save(tmp_path / f"{name}.png")
        rows.append((name, str(tmp_path / f"{name}.png"), "chair" if name != "blue" else "lamp"))
    noise = np.random.default_rng(7).integers(0, 255, (100, 120, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "room.png")  # no plain border: no cut-out
    rows.append(("room-shot", str(tmp_path / "room.png"), "lamp"))
    rows.append(("misc", str(tmp_path / "red.png"), "other"))
    return pd.DataFrame(rows, columns=["product_id", "image", "category"])


def _still_rules(scenes, per_scene):
    from catalog.adaptation_pairs import SyntheticPairRules
    from catalog.taught.cutout import PasteJitter
    from catalog.taught.scenes import SceneRules

    still = PasteJitter(brightness=0, contrast=0, colour=0, blur=0, shear=0, feather=0)
    scene = SceneRules(scene_size=200, min_products=per_scene, max_products=per_scene,
                       min_area=0.02, max_area=0.1, jitter=still)  # fmt: skip
    return SyntheticPairRules(scenes=scenes, cutout_size=64, seed=3, scene=scene)


def test_product_cutouts_skip_photos_without_plain_background_and_other(tmp_path):
    from catalog.adaptation_pairs import product_cutouts

    cutouts, skipped = product_cutouts(_product_photos(tmp_path), size=64)
    assert sorted(c.product_id for c in cutouts) == ["blue", "green", "red"]
    assert skipped == {"lamp": 1}
    assert {c.product_id: c.category for c in cutouts}["blue"] == "lamp"
    only, _ = product_cutouts(_product_photos(tmp_path), categories=["other"], size=64)
    assert [c.product_id for c in only] == ["misc"]


def test_product_order_pastes_every_product_about_equally_often(tmp_path):
    from catalog.adaptation_pairs import product_cutouts, product_order

    cutouts, _ = product_cutouts(_product_photos(tmp_path), size=64)
    order = product_order(cutouts, 10, np.random.default_rng(0))
    counts = pd.Series([c.product_id for c in order]).value_counts()
    assert len(order) == 10 and set(counts.index) == {"red", "green", "blue"}
    assert counts.max() - counts.min() <= 1


def test_synthetic_pair_crop_is_the_pasted_product_inside_the_scene(tmp_path):
    from catalog.adaptation_pairs import product_cutouts, synthetic_pairs

    cutouts, _ = product_cutouts(_product_photos(tmp_path), size=64)
    backgrounds = [Image.new("RGB", (300, 200), (128, 128, 128))]
    scenes = list(synthetic_pairs(backgrounds, cutouts, _still_rules(12, 1)))
    assert len(scenes) == 12 and all(len(s) == 1 for s in scenes)
    seen = set()
    for (pair,) in scenes:
        b = pair.box
        assert 0 <= b.x1 < b.x2 <= 200 and 0 <= b.y1 < b.y2 <= 134  # 300x200 -> 200x134
        # margin 0: the crop is the box; alone in the scene it is the product's colour
        assert pair.crop.size == (round(b.width), round(b.height))
        a = np.asarray(pair.crop, dtype=np.int16)
        share = np.mean(np.abs(a - COLOURS[pair.product_id]).max(axis=2) < 30)
        assert share > 0.9, (pair.product_id, share)
        assert pair.category == ("lamp" if pair.product_id == "blue" else "chair")
        seen.add(pair.product_id)
    assert seen == {"red", "green", "blue"}


def test_synthetic_pairs_with_occlusion_carry_visible_products_and_need_backgrounds(tmp_path):
    from catalog.adaptation_pairs import product_cutouts, synthetic_pairs

    cutouts, _ = product_cutouts(_product_photos(tmp_path), size=64)
    backgrounds = [Image.new("RGB", (200, 200), (128, 128, 128))]
    scenes = list(synthetic_pairs(backgrounds, cutouts, _still_rules(8, 3)))
    pairs = [p for s in scenes for p in s]
    assert len(pairs) >= 8 and all(len(s) <= 3 for s in scenes)
    for p in pairs:
        a = np.asarray(p.crop, dtype=np.int16)
        # the product is visible in its own box (at least min_visible of it)
        assert np.mean(np.abs(a - COLOURS[p.product_id]).max(axis=2) < 30) > 0.2
        assert p.scene_index in range(8)
    with pytest.raises(DatasetError, match="background"):
        next(synthetic_pairs([], cutouts, _still_rules(1, 1)))


def test_vector_look_recall_follows_the_evaluation_rules():
    from embedder.adaptation import SceneObjects, vector_look_recall

    ids = ["c0", "c1", "c2", "l0", "l1"]
    cats = ["chair", "chair", "chair", "lamp", "lamp"]
    pv = np.eye(5, dtype=np.float32)
    near = lambda i, j: pv[i] * 0.8 + pv[j] * 0.6  # noqa: E731  (first i, then j)
    scenes = [
        # r0: one chair object nearest c1 then c0; its lamp pair l0 is not covered
        SceneObjects("r0", near(1, 0)[None], [("chair",)]),
        # r1: an object searching everything (no category): reaches the lamps too
        SceneObjects("r1", near(4, 3)[None], [()]),
        # r2: no objects at all
        SceneObjects("r2", np.zeros((0, 5), np.float32), []),
    ]
    products_of = {"r0": ["c0", "l0", "unknown"], "r1": ["l0"], "r2": ["c2"]}
    r = vector_look_recall(scenes, products_of, ids, cats, pv, ks=(1, 2))
    # pairs: c0 (covered, rank 2), l0 (not covered), l0 in r1 (covered, rank 2), c2 (not)
    assert (r.pairs, r.covered) == (4, 2)
    assert r.hits == {1: 0, 2: 2}
    d = r.as_dict()
    assert d["covered"] == {"1": 0.0, "2": 1.0} and d["all"]["2"] == 0.5
    # a transform moves the object vectors: swapping coordinates 0 and 1 puts c0 first
    swap = lambda v: v[:, [1, 0, 2, 3, 4]]  # noqa: E731
    assert vector_look_recall(scenes, products_of, ids, cats, pv, swap, ks=(1,)).hits[1] == 1
