"""The open_clip backbone, on a tiny randomly initialised ViT (no weights exist here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from embedder import create_backbone
from embedder.clip import TINY_TEST_MODEL
from shopthelook.core.errors import BackboneError
from tests.conftest import draw_image

TINY = f"clip:{TINY_TEST_MODEL}/random"


@pytest.fixture(scope="module")
def tiny():
    return create_backbone(TINY)


def test_image_and_text_towers_share_one_space(tiny):
    assert tiny.has_text and tiny.dim == 32
    images = tiny.embed_images([draw_image(1), draw_image(2), draw_image(3)])
    texts = tiny.embed_texts(["a red chair", "a wooden table"])
    assert images.shape == (3, 32) and texts.shape == (2, 32)
    assert images.dtype == texts.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(texts, tiny.embed_texts(["a red chair", "a wooden table"]))
    assert tiny.embed_texts([]).shape == (0, 32)
    assert abs(texts[0] @ texts[1]) < 0.9999


def test_random_weights_are_seeded_and_a_checkpoint_path_loads(tiny, tmp_path):
    checkpoint = tmp_path / "tiny.pt"
    torch.save(tiny.model.state_dict(), checkpoint)
    loaded = create_backbone(f"clip:{TINY_TEST_MODEL}/{checkpoint}")
    assert loaded.name == f"clip:{TINY_TEST_MODEL}/{checkpoint.resolve()}"
    images = [draw_image(5), draw_image(6)]
    np.testing.assert_allclose(loaded.embed_images(images), tiny.embed_images(images), atol=1e-5)
    np.testing.assert_allclose(loaded.embed_texts(["sofa"]), tiny.embed_texts(["sofa"]), atol=1e-5)
    assert create_backbone(loaded.name).name == loaded.name


def test_relative_checkpoint_path_is_made_absolute(tiny, tmp_path, monkeypatch):
    torch.save(tiny.model.state_dict(), tmp_path / "rel.pt")
    monkeypatch.chdir(tmp_path)
    backbone = create_backbone(f"clip:{TINY_TEST_MODEL}/rel.pt")
    assert backbone.name.endswith(str(Path(tmp_path / "rel.pt").resolve()))


@pytest.mark.parametrize(
    "spec,message",
    [
        ("clip:ViT-B-32/laion2b_s34b_b79k", "hub tag"),
        ("clip:ViT-B-32/openai", "give its path"),
        ("clip:ViT-B-32/no/such/file.pt", "no such checkpoint"),
        ("clip:NoSuchNet/random", "unknown open_clip model"),
        ("clip:ViT-B-32", "clip:<model>/<checkpoint"),
    ],
)
def test_unusable_specs_raise_backbone_error(spec, message):
    with pytest.raises(BackboneError, match=message):
        create_backbone(spec)


def test_checkpoint_that_does_not_fit_is_a_backbone_error(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneError, match="cannot be loaded"):
        create_backbone(f"clip:{TINY_TEST_MODEL}/{corrupt}")
    wrong = tmp_path / "wrong.pt"
    torch.save({"visual.conv1.weight": torch.zeros(3)}, wrong)
    with pytest.raises(BackboneError, match="cannot be loaded"):
        create_backbone(f"clip:{TINY_TEST_MODEL}/{wrong}")
