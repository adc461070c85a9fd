"""The taxonomy: product rows -> catalog categories, detector labels -> searched categories."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from shopthelook.core.errors import ConfigError
from shopthelook.core.taxonomy import OTHER, Taxonomy, load_taxonomy


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.mark.parametrize(
    "product_type, category",
    [
        ("Chair", "chair"),
        ("Swivel chair", "chair"),
        ("Bar stool with backrest", "chair"),
        ("Armchair", "armchair"),
        ("Armchair with cushion", "armchair"),
        ("Three-seat sofa", "sofa"),
        ("Two-seat sofa w chaise longue left", "sofa"),
        ("Bed frame", "bed"),
        ("Bunk bed frame", "bed"),
        ("Cot", "bed"),
        ("Quilt cover and 4 pillowcases", "bedding"),
        ("Quilt cover,pillowcase for cot", "bedding"),
        ("Bedspread and cushion cover", "bedding"),
        ("Throw", "bedding"),
        ("Table", "table"),
        ("Coffee table", "table"),
        ("Nest of tables, set of 2", "table"),
        ("Desk", "table"),
        ("Table lamp", "lamp"),
        ("Pendant lamp", "lamp"),
        ("Mirror with integrated lighting", "mirror"),
        ("Table mirror", "mirror"),
        ("Plant pot", "plant-pot"),
        ("Wall clock", "clock"),
        ("Cushion cover", "cushion"),
        ("Chair pad", "cushion"),
        ("Rug, flatwoven", "rug"),  # "flatwOVEN" once made rugs ovens
        ("Oven", "oven"),
        ("Induction hob", "oven"),
        ("Portable induction hob", "oven"),  # "porTABLE" once made it a table
        ("Mug", "cup"),
        ("Wine glass", "cup"),
        ("Bath sheet", "textile"),
        ("Frame", "frame"),
        ("Wardrobe frame", "storage"),
        ("Box with lid", "storage"),
        ("Door", OTHER),
        ("Throwing game", OTHER),
        ("14-piece vegetables set", OTHER),
        ("Hook with suction cup", OTHER),
        ("Scented candle in glass", OTHER),
    ],
)
def test_ikea_product_types(taxonomy, product_type, category):
    assert taxonomy.categorize({"product_type": product_type, "name": "X"}) == category


def test_clock_rows_known_only_by_their_folder(taxonomy):
    assert taxonomy.categorize({"product_type": math.nan, "source_folder": "clock"}) == "clock"
    assert taxonomy.categorize({"product_type": None, "source_folder": "objects"}) == OTHER


@pytest.mark.parametrize(
    "row, category",
    [
        ({"product_group_name": "Garment Upper body"}, "garment-upper"),
        ({"product_group_name": "Garment Lower body"}, "garment-lower"),
        ({"product_group_name": "Garment Full body"}, "garment-full"),
        ({"product_group_name": "Shoes"}, "shoes"),
        ({"product_group_name": "Accessories", "product_type_name": "Bag"}, "bag"),
        ({"label": "T-Shirt"}, "garment-upper"),
        ({"label": "Pants"}, "garment-lower"),
        ({"label": "Dress"}, "garment-full"),
        ({"label": "Hat"}, "accessories"),
        ({"label": "Skip"}, OTHER),  # the clothing set's "unusable photo" label
    ],
)
def test_fashion_rows(taxonomy, row, category):
    assert taxonomy.categorize(row) == category


def test_detector_labels_search_their_own_category_first(taxonomy):
    assert taxonomy.search_categories("chair")[0] == "chair"
    assert "armchair" in taxonomy.search_categories("chair")
    assert taxonomy.search_categories("couch")[0] == "sofa"
    assert "armchair" in taxonomy.search_categories("couch")
    assert taxonomy.search_categories("bed")[:2] == ("bed", "bedding")
    assert taxonomy.search_categories("dining table") == ("table",)
    assert taxonomy.search_categories("potted plant") == ("plant-pot",)
    garments = set(taxonomy.search_categories("person"))
    assert {"garment-upper", "garment-lower", "garment-full", "shoes"} <= garments
    for label in ("chair", "couch", "bed", "person", "clock", "vase"):
        assert taxonomy.category_for_label(label) == taxonomy.search_categories(label)[0]


def test_labels_without_a_category(taxonomy):
    assert taxonomy.search_categories("car") == ()
    assert taxonomy.category_for_label("car") is None
    assert taxonomy.category_for_label("") is None


def test_detectable_categories(taxonomy):
    detectable = set(taxonomy.detectable_categories)
    assert {"chair", "armchair", "sofa", "bed", "bedding", "table", "clock"} <= detectable
    assert not {"rug", "storage", "curtains", OTHER} & detectable
    assert taxonomy.is_detectable("armchair") and not taxonomy.is_detectable("rug")
    assert not taxonomy.is_detectable("no-such-category")
    assert OTHER in taxonomy.categories


def test_a_category_column_is_honoured(taxonomy):
    # The table's own category wins over what the product type would give.
    assert taxonomy.categorize({"category": "sofa", "product_type": "Chair"}) == "sofa"
    assert taxonomy.categorize({"category": "other", "product_type": "Chair"}) == OTHER
    # A value the taxonomy does not name is matched by the rules, else kept as given.
    assert taxonomy.categorize({"category": "Coffee table"}) == "table"
    assert taxonomy.categorize({"category": "garden-gnome"}) == "garden-gnome"
    # An empty category falls back to the rules.
    assert taxonomy.categorize({"category": math.nan, "product_type": "Vase"}) == "vase"
    assert taxonomy.categorize({"category": "", "product_type": "Vase"}) == "vase"


def test_categorize_table(taxonomy):
    table = pd.DataFrame(
        {
            "product_type": ["Chair", "Three-seat sofa", None, "Door"],
            "source_folder": ["chair", "couch", "clock", "objects"],
            "ignored": [1, 2, 3, 4],
        },
        index=[10, 11, 12, 13],
    )
    cats = taxonomy.categorize_table(table)
    assert list(cats.index) == [10, 11, 12, 13]
    assert list(cats) == ["chair", "sofa", "clock", OTHER]
    assert list(taxonomy.categorize_table(pd.DataFrame({"x": [1, 2]}))) == [OTHER, OTHER]


def test_a_secondary_label_never_takes_the_own_slot(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(
        "[categories.armchair]\n"
        'also_detector_labels = ["chair"]\n'
        "[categories.chair]\n"
        'detector_labels = ["chair"]\n'
    )
    t = Taxonomy.load(path)
    assert t.search_categories("chair") == ("chair", "armchair")
    assert t.detectable_categories == ["armchair", "chair"]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("this is [not toml", "not valid TOML"),
        ("[other]\nx = 1\n", "no [categories"),
        ('[categories.chair]\nmatch.product_type = ["(unclosed"]\n', "bad pattern"),
        ('[categories.chair]\ndetector_label = ["chair"]\n', "unknown keys"),
        ("[categories.chair]\ndetector_labels = 3\n", "list of labels"),
        ('[categories]\nchair = "x"\n', "must be a table"),
        ('[categories.chair]\nmatch = "chair"\n', "match must be a table"),
        ("[categories.chair]\nmatch.product_type = [1]\n", "bad pattern"),
    ],
)
def test_bad_taxonomy_files(tmp_path, text, problem):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        Taxonomy.load(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_missing_taxonomy_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_taxonomy(tmp_path / "none.toml")
    with pytest.raises(ConfigError, match="folder"):
        load_taxonomy(tmp_path)


@pytest.mark.shared
def test_real_ikea_products_are_mostly_categorised(taxonomy, ikea_root):
    products = pd.read_csv(ikea_root / "products.csv")
    cats = taxonomy.categorize_table(products)
    assert (cats == OTHER).mean() <= 0.25
    # every photo from the dataset's furniture folders lands in that furniture's category
    folder_to_category = {
        "chair": {"chair", "armchair"},
        "couch": {"sofa", "armchair"},
        "bed": {"bed", "bedding"},
        "dining table": {"table"},
        "plant_pot": {"plant-pot"},
        "clock": {"clock"},
    }
    for folder, allowed in folder_to_category.items():
        got = cats[products["source_folder"] == folder]
        share = got.isin(allowed).mean()
        assert share >= 0.85, (folder, got.value_counts().head(5).to_dict())
    # each of the most common product types goes to one category that is not "other"
    for product_type in products["product_type"].value_counts().index[:15]:
        if product_type in ("Door", "Handle"):
            continue  # cabinet fronts and hardware: rightly "other"
        got = cats[products["product_type"] == product_type].unique()
        assert len(got) == 1 and got[0] != OTHER, (product_type, got)
