"""Backbone names: the registry, the '+'/'*' concatenation grammar, create_embedder."""

from __future__ import annotations

import numpy as np
import pytest

from embedder import (
    Embedder,
    canonical_backbone_name,
    create_backbone,
    create_embedder,
    describe_backbones,
    list_backbones,
)
from embedder.concat import ConcatBackbone
from shopthelook.core.config import Settings
from shopthelook.core.errors import BackboneError, HeadError
from tests.conftest import draw_image


def test_list_backbones_names_every_builtin():
    names = list_backbones()
    assert {"yolo", "hvf", "random", "clip:<model>/<checkpoint>"} <= set(names)
    assert set(names) <= set(describe_backbones())


@pytest.mark.parametrize("name", ["resnet50", "clip", "yolo:big", "hvf*x", "random*-1", "", "+hvf"])
def test_bad_names_raise_backbone_error_listing_the_known_ones(name):
    with pytest.raises(BackboneError) as info:
        create_backbone(name)
    message = str(info.value)
    assert "\n" not in message
    if name in ("resnet50", "", "+hvf"):
        assert "yolo" in message and "hvf" in message and "random" in message


def test_concat_weights_blocks_and_combines_cosines():
    concat = create_backbone("random*1.0+hvf*0.5")
    assert isinstance(concat, ConcatBackbone)
    assert concat.name == "random+hvf*0.5"
    random_bb, hvf_bb = (b for b, _ in concat.blocks)
    assert concat.dim == random_bb.dim + hvf_bb.dim
    images = [draw_image(1), draw_image(2)]
    v = concat.embed_images(images)
    head, tail = v[:, : random_bb.dim], v[:, random_bb.dim :]
    # each block is unit-normalised, then weighted 1 : 0.5 before the final normalisation
    np.testing.assert_allclose(
        np.linalg.norm(head, axis=1) / np.linalg.norm(tail, axis=1), 2.0, rtol=1e-5
    )
    r, h = random_bb.embed_images(images), hvf_bb.embed_images(images)
    expected = (1.0 * (r[0] @ r[1]) + 0.25 * (h[0] @ h[1])) / 1.25
    assert v[0] @ v[1] == pytest.approx(expected, abs=1e-5)


def test_heavier_block_dominates_similarity():
    # two images that hvf finds alike (both flat red) but random does not
    from PIL import Image

    a, b = Image.new("RGB", (40, 40), (200, 0, 0)), Image.new("RGB", (40, 40), (201, 0, 0))
    light = create_backbone("random+hvf*0.2").embed_images([a, b])
    heavy = create_backbone("random+hvf*5").embed_images([a, b])
    assert heavy[0] @ heavy[1] > light[0] @ light[1] + 0.5


def test_canonical_name_matches_built_name():
    assert canonical_backbone_name(" hvf*1 + random*0.25 ") == "hvf+random*0.25"
    assert create_backbone("hvf*1+random*0.25").name == "hvf+random*0.25"
    assert canonical_backbone_name("yolo+hvf*0.5") == "yolo+hvf*0.5"


def test_create_embedder_identity_head_and_missing_head(tmp_path):
    embedder = create_embedder(Settings().replace(backbone="hvf"))
    assert isinstance(embedder, Embedder)
    assert embedder.name == "hvf" and embedder.head_id == "identity" and embedder.dim == 138
    vectors = embedder.embed_images([draw_image(3)])
    np.testing.assert_allclose(vectors, embedder.backbone.embed_images([draw_image(3)]), atol=1e-6)
    with pytest.raises(HeadError, match="head.json"):
        create_embedder(Settings().replace(backbone="random", head=str(tmp_path)))


def test_progress_bar_does_not_change_results(capsys):
    backbone = create_backbone("random")
    images = [draw_image(i) for i in range(3)]
    quiet = backbone.embed_images(images)
    shown = backbone.embed_images(images, show_progress=True, batch_size=2)
    np.testing.assert_array_equal(quiet, shown)
    assert "random" in capsys.readouterr().err


def test_random_backbone_is_a_pixel_hash():
    backbone = create_backbone("random")
    a, b = draw_image(1), draw_image(1)
    moved = draw_image(1).rotate(90, expand=True)
    v = backbone.embed_images([a, b, moved])
    np.testing.assert_array_equal(v[0], v[1])
    assert abs(v[0] @ v[2]) < 0.5
    assert backbone.dim == 256
