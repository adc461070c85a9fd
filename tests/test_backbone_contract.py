"""The contract every registered backbone keeps (a new backbone is picked up automatically).

Backbones that build without ../shared run on every machine (clip with its tiny random test
model); those that need the real weights (yolo) are marked ``shared`` and skip without them.
"""

from __future__ import annotations

import numpy as np
import pytest

from embedder import create_backbone, registered_backbones
from shopthelook.core.config import Settings
from shopthelook.core.errors import ImageError
from tests.conftest import draw_image


def _cases():
    cases = []
    for entry in registered_backbones():
        if entry.example:
            cases.append(pytest.param(entry.example, id=entry.example))
        if entry.needs_shared_example:
            name = entry.needs_shared_example
            cases.append(pytest.param(name, id=name, marks=pytest.mark.shared))
    cases.append(pytest.param("random+hvf*0.5", id="concat"))
    return cases


_built: dict[str, tuple] = {}


@pytest.fixture(params=_cases())
def built(request):
    """(backbone, the settings it was built with), built once per session."""
    name = request.param
    if name not in _built:
        settings = Settings()
        if "yolo" in name:
            weights = str(request.getfixturevalue("yolo_weights"))
            settings = settings.replace(detector_weights=weights)
        _built[name] = (create_backbone(name, settings), settings)
    return _built[name]


@pytest.fixture
def backbone(built):
    return built[0]


@pytest.fixture(scope="module")
def images():
    return [draw_image(i, size=(96 + 8 * i, 80)) for i in range(5)]


def test_shape_dtype_and_unit_norm(backbone, images):
    vectors = backbone.embed_images(images, batch_size=2)
    assert vectors.shape == (len(images), backbone.dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # different pictures must not collapse onto one vector
    sims = vectors @ vectors.T
    assert sims[~np.eye(len(images), dtype=bool)].max() < 0.9999


def test_deterministic_and_batch_size_invariant(backbone, images):
    a = backbone.embed_images(images, batch_size=1)
    b = backbone.embed_images(images, batch_size=4)
    c = backbone.embed_images(images, batch_size=4)
    np.testing.assert_allclose(a, b, atol=1e-4)
    np.testing.assert_array_equal(b, c)


def test_paths_and_pil_images_embed_alike(backbone, images, tmp_path):
    paths = []
    for i, image in enumerate(images[:3]):
        path = tmp_path / f"img{i}.png"  # lossless, so the pixels are the same
        image.save(path)
        paths.append(path if i % 2 else str(path))
    from_paths = backbone.embed_images(paths)
    np.testing.assert_allclose(from_paths, backbone.embed_images(images[:3]), atol=1e-5)


def test_bad_file_raises_image_error_naming_it(backbone, images, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(ImageError, match="broken.jpg"):
        backbone.embed_images([images[0], bad])
    with pytest.raises(ImageError, match="missing.png"):
        backbone.embed_images([tmp_path / "missing.png"])


def test_empty_input_gives_empty_matrix(backbone):
    empty = backbone.embed_images([])
    assert empty.shape == (0, backbone.dim) and empty.dtype == np.float32


def test_name_round_trips(built, images):
    backbone, settings = built
    again = create_backbone(backbone.name, settings)
    assert again.name == backbone.name and again.dim == backbone.dim
    np.testing.assert_allclose(
        again.embed_images(images[:2]), backbone.embed_images(images[:2]), atol=1e-5
    )


def test_text_tower_contract(backbone):
    if backbone.has_text:
        texts = backbone.embed_texts(["a red chair", "a wooden table"])
        assert texts.shape == (2, backbone.dim) and texts.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    else:
        from shopthelook.core.errors import BackboneError

        with pytest.raises(BackboneError, match="no text tower"):
            backbone.embed_texts(["a red chair"])


def test_odd_images_give_finite_unit_vectors(backbone):
    from PIL import Image

    odd = [
        Image.new("RGB", (1, 1), (200, 10, 10)),
        Image.new("RGB", (600, 4), (10, 200, 10)),
        Image.new("L", (30, 50), 90),
        Image.new("RGBA", (40, 40), (0, 0, 255, 128)),
    ]
    vectors = backbone.embed_images(odd, batch_size=3)
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
