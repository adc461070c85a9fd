"""The catalog: build, search within a category, atomic saves, manifest checks, add/remove."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from catalog import Catalog
from shopthelook.core.errors import CatalogError, ProductTableError
from tests.helpers import build_catalog, write_products


@pytest.fixture
def catalog(tmp_path):
    return build_catalog(tmp_path)


def test_build_writes_manifest_and_one_index_per_category(catalog, tmp_path):
    manifest = json.loads((tmp_path / "catalog" / "manifest.json").read_text())
    assert manifest["backbone"] == "hvf"
    assert manifest["counts"] == {"chair": 4, "sofa": 4, "vase": 4}
    assert manifest["index"] == {"chair": "flat", "sofa": "flat", "vase": "flat"}
    assert manifest["dim"] == catalog.vectors.shape[1]
    assert len(manifest["source_hash"]) == 16
    assert sorted(p.name for p in (tmp_path / "catalog" / "indexes").iterdir()) == [
        "chair.faiss",
        "sofa.faiss",
        "vase.faiss",
    ]


def test_search_stays_within_the_category_and_finds_the_same_image(catalog):
    for pid in ["P000", "P001", "P005"]:
        category = catalog.product(pid)["category"]
        hits = catalog.search(catalog.embeddings([pid]), category, k=3)[0]
        assert hits[0][0] == pid
        assert hits[0][1] == pytest.approx(1.0, abs=1e-4)
        assert {catalog.product(h[0])["category"] for h in hits} == {category}


def test_search_categories_merges_by_score(catalog):
    query = catalog.embeddings(["P004"])[0]
    merged = catalog.search_categories(query, ["chair", "sofa"], k=5)
    scores = [s for _, s in merged]
    assert scores == sorted(scores, reverse=True)
    assert merged[0][0] == "P004"
    assert {catalog.product(p)["category"] for p, _ in merged} <= {"chair", "sofa"}


def test_load_round_trip_and_backbone_check(catalog, tmp_path):
    loaded = Catalog.load(tmp_path / "catalog", expected_backbone="hvf")
    assert len(loaded) == 12
    np.testing.assert_allclose(loaded.embeddings(["P003"]), catalog.embeddings(["P003"]))
    with pytest.raises(CatalogError, match="built with backbone 'hvf', not 'yolo'"):
        Catalog.load(tmp_path / "catalog", expected_backbone="yolo")


def test_load_refuses_missing_and_inconsistent_catalogs(catalog, tmp_path):
    with pytest.raises(CatalogError, match="no such folder"):
        Catalog.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CatalogError, match="no manifest.json"):
        Catalog.load(tmp_path / "empty")
    folder = tmp_path / "catalog"
    table = pd.read_parquet(folder / "products.parquet")
    table.iloc[:-1].to_parquet(folder / "products.parquet", index=False)
    with pytest.raises(CatalogError, match="rows but"):
        Catalog.load(folder)


def test_failed_rebuild_keeps_the_old_catalog(catalog, tmp_path):
    from embedder import create_embedder
    from shopthelook.core.config import load_settings
    from shopthelook.core.taxonomy import load_taxonomy

    bad = tmp_path / "bad.csv"
    pd.DataFrame(
        {"product_id": ["a", "a"], "image": ["x.png", "y.png"], "category": ["c", "c"]}
    ).to_csv(bad, index=False)
    with pytest.raises(ProductTableError, match="duplicate product_id"):
        Catalog.build(
            bad,
            embedder=create_embedder(load_settings(backbone="hvf")),
            taxonomy=load_taxonomy(),
            out=tmp_path / "catalog",
        )
    assert len(Catalog.load(tmp_path / "catalog")) == 12
    live = (tmp_path / "catalog").resolve()  # the catalog's own version folder
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".catalog") and p != live]


def test_product_table_errors_name_the_problem(tmp_path):
    from catalog.product_table import prepare_product_table
    from shopthelook.core.taxonomy import load_taxonomy

    path = tmp_path / "p.csv"
    pd.DataFrame({"id": ["a"], "image": ["x.png"]}).to_csv(path, index=False)
    with pytest.raises(
        ProductTableError, match=r"p.csv: missing required column\(s\) \['product_id'\]"
    ):
        prepare_product_table(path, taxonomy=load_taxonomy())
    pd.DataFrame({"product_id": ["a"], "image": ["x.png"]}).to_csv(path, index=False)
    with pytest.raises(ProductTableError, match="no category column"):
        prepare_product_table(path, taxonomy=load_taxonomy())


def test_unreadable_product_images_are_skipped_and_recorded(tmp_path):
    from embedder import create_embedder
    from shopthelook.core.config import load_settings
    from shopthelook.core.taxonomy import load_taxonomy

    csv = write_products(tmp_path / "src", 6)
    (tmp_path / "src" / "img" / "p001.png").write_bytes(b"")
    (tmp_path / "src" / "img" / "p002.png").write_text("not an image")
    catalog = Catalog.build(
        csv,
        embedder=create_embedder(load_settings(backbone="hvf")),
        taxonomy=load_taxonomy(),
        out=tmp_path / "cat",
    )
    assert len(catalog) == 4
    errors = " ".join(f["error"] for f in catalog.manifest["failures"])
    assert "p001.png: empty file" in errors and "p002.png: not an image" in errors


def test_add_and_remove_without_rebuild(catalog, tmp_path):
    from embedder import create_embedder
    from shopthelook.core.config import load_settings

    embedder = create_embedder(load_settings(backbone="hvf"))
    before = catalog.search(catalog.embeddings(["P000"]), "chair", k=4)[0]
    extra = write_products(tmp_path / "extra", 3, seed0=100)
    result = catalog.add(extra, embedder=embedder)
    assert result["added"] == 3
    reloaded = Catalog.load(tmp_path / "catalog")
    assert len(reloaded) == 15 and reloaded.has_product("P100")
    assert reloaded.search(reloaded.embeddings(["P101"]), "sofa", k=1)[0][0][0] == "P101"
    with pytest.raises(CatalogError, match="already in the catalog"):
        catalog.add(extra, embedder=embedder)
    assert catalog.remove(["P100", "P101", "P102"]) == 3
    reloaded = Catalog.load(tmp_path / "catalog")
    assert len(reloaded) == 12
    after = reloaded.search(reloaded.embeddings(["P000"]), "chair", k=4)[0]
    assert [p for p, _ in after] == [p for p, _ in before]
    assert [s for _, s in after] == pytest.approx([s for _, s in before], abs=1e-5)
    with pytest.raises(CatalogError, match="not in the catalog"):
        catalog.remove(["nope"])


def test_add_refuses_another_backbone(catalog, tmp_path):
    from embedder import create_embedder
    from shopthelook.core.config import load_settings

    extra = write_products(tmp_path / "extra", 2, seed0=50)
    with pytest.raises(CatalogError, match="uses backbone 'hvf'"):
        catalog.add(extra, embedder=create_embedder(load_settings(backbone="random")))
