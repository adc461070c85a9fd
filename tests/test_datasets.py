"""Dataset adapters over ../shared/data and generic tables / folders."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from shopthelook.core.datasets import load_pairs, load_products, load_scenes
from shopthelook.core.errors import DatasetError
from shopthelook.core.taxonomy import load_taxonomy
from tests.conftest import draw_image


@pytest.mark.shared
@pytest.mark.parametrize(
    "name,n,category",
    [
        ("ikea", 2292, "chair"),
        ("hm", 6000, "garment-upper"),
        ("clothing", 5756, "shoes"),
        ("furniture-styles", 802, "furniture"),
    ],
)
def test_shared_datasets_load_with_images_and_categories(shared_root, name, n, category):
    table = load_products(name, data_root=shared_root / "data")
    assert len(table) == n
    assert table["product_id"].is_unique
    assert Path(table["image"].iloc[0]).is_absolute() and Path(table["image"].iloc[0]).exists()
    assert category in set(load_taxonomy().categorize_table(table))


@pytest.mark.shared
def test_ikea_scenes_and_pairs(shared_root):
    scenes = load_scenes("ikea", data_root=shared_root / "data")
    pairs = load_pairs("ikea", data_root=shared_root / "data")
    assert {"scene_id", "image", "room_category"} <= set(scenes.columns)
    assert Path(scenes["image"].iloc[0]).exists()
    assert set(pairs.columns) == {"scene_id", "product_id"}
    assert pairs["scene_id"].isin(set(scenes["scene_id"])).all()


def test_generic_tables_and_folders(tmp_path):
    (tmp_path / "imgs").mkdir()
    draw_image(0).save(tmp_path / "imgs" / "a.png")
    draw_image(1).save(tmp_path / "imgs" / "b.jpg")
    (tmp_path / "imgs" / "notes.txt").write_text("x")
    scenes = load_scenes(tmp_path / "imgs")
    assert list(scenes["scene_id"]) == ["a", "b"]
    pd.DataFrame({"room_id": ["r1"], "image": ["imgs/a.png"]}).to_csv(
        tmp_path / "s.csv", index=False
    )
    s = load_scenes(tmp_path / "s.csv")
    assert s["scene_id"].tolist() == ["r1"] and s["image"].iloc[0] == str(
        tmp_path / "imgs" / "a.png"
    )
    s = load_scenes(tmp_path / "s.csv", images_root="/elsewhere")
    assert s["image"].iloc[0] == "/elsewhere/imgs/a.png"
    pd.DataFrame({"room_id": ["r1"], "product_id": ["p"]}).to_csv(tmp_path / "p.csv", index=False)
    assert load_pairs(tmp_path / "p.csv").to_dict("records") == [
        {"scene_id": "r1", "product_id": "p"}
    ]


def test_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset 'nope'|no such file"):
        load_scenes("nope")
    pd.DataFrame({"x": [1]}).to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(DatasetError, match="needs a scene_id"):
        load_scenes(tmp_path / "s.csv")
    with pytest.raises(DatasetError, match="needs a scene_id"):
        load_pairs(tmp_path / "s.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no image files"):
        load_scenes(tmp_path / "empty")
