"""`shopthelook ranker train|eval|import-hm` and `shopthelook events ...` on a tiny real catalog."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ranker.events import EventStore
from ranker.synthetic import make_shop
from shopthelook.cli import main


class _ColourCodedEmbedder:
    """Each product photo is one flat colour encoding its row; the 'embedding' is the row's
    synthetic vector, so the catalog's FAISS index holds the synthetic shop."""

    name = "colour-code"
    head_id = "identity"

    def __init__(self, vectors: np.ndarray):
        self.vectors = vectors
        self.dim = vectors.shape[1]

    def weights_fingerprints(self) -> dict[str, str]:
        return {}  # no weights: the colour code is the embedding

    def embed_images(self, images, batch_size=16, show_progress=False):
        rows = [img.getpixel((0, 0)) for img in images]
        return self.vectors[[r + 256 * g for r, g, _ in rows]]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from catalog import Catalog
    from shopthelook.core.taxonomy import load_taxonomy

    root = tmp_path_factory.mktemp("cli")
    shop = make_shop(n_users=70, per_category=40, purchases_per_user=12, seed=5)
    products = shop.products.copy()
    paths = []
    for i in range(len(products)):
        path = root / f"img{i}.png"
        Image.new("RGB", (8, 8), (i % 256, i // 256, 0)).save(path)
        paths.append(str(path))
    products["image"] = paths
    Catalog.build(
        products[["product_id", "image", "category", "name"]],
        embedder=_ColourCodedEmbedder(shop.space.vectors),
        taxonomy=load_taxonomy(),
        out=root / "catalog",
    )
    db = root / "events.db"
    store = EventStore(db)
    assert store.log_many(shop.events.to_dict("records")) == len(shop.events)
    store.close()
    return root, shop


def test_train_eval_and_keep_the_better_model(setup, capsys):
    root, _ = setup
    live = root / "live"
    args = [
        "-q",
        "ranker",
        "train",
        "--events",
        str(root / "events.db"),
        "--catalog",
        str(root / "catalog"),
        "--out",
        str(live),
        "--candidates",
        "30",
    ]
    assert main([*args, "--max-queries", "400"]) == 0
    out = capsys.readouterr().out
    assert "is live" in out and "lightgbm" in out
    assert {"model.txt", "features.json", "metrics.json", "manifest.json"} <= {
        p.name for p in live.iterdir()
    }
    first = (live / "model.txt").read_text()
    live_ndcg = json.loads((live / "metrics.json").read_text())["test"]["lightgbm"]["ndcg@10"]

    assert (
        main(
            [
                "-q",
                "ranker",
                "eval",
                "--model",
                str(live),
                "--events",
                str(root / "events.db"),
                "--catalog",
                str(root / "catalog"),
                "--candidates",
                "30",
                "--json",
            ]
        )
        == 0
    )
    table = json.loads(capsys.readouterr().out)
    assert table["lightgbm"]["ndcg@10"] == pytest.approx(live_ndcg, abs=1e-9)
    assert table["lightgbm"]["ndcg@10"] > table["visual-only"]["ndcg@10"]

    # a model trained on two queries: replaced only if it is at least as good on the same test
    assert main([*args, "--max-queries", "2"]) == 0
    out = capsys.readouterr().out
    if "kept the live model" in out:
        assert (live / "model.txt").read_text() == first
        assert list(root.glob("live.new-*"))
    else:
        new = json.loads((live / "metrics.json").read_text())
        assert new["test"]["lightgbm"]["ndcg@10"] >= new["live_model_ndcg@10"]


def test_rolling_windows_train_and_eval_agree(setup, capsys, tmp_path):
    root, _ = setup
    common = ["--events", str(root / "events.db"), "--catalog", str(root / "catalog")]
    model = tmp_path / "rolling"
    train = ["-q", "ranker", "train", *common, "--out", str(model), "--candidates", "30"]
    assert main([*train, "--window-days", "10", "--train-candidates", "50"]) == 0
    capsys.readouterr()
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["split"]["window_days"] == 10
    assert manifest["config"]["train_candidates"] == 50
    trained = json.loads((model / "metrics.json").read_text())["test"]["lightgbm"]["ndcg@10"]
    assert (
        main(
            ["-q", "ranker", "eval", "--model", str(model), *common, "--candidates", "30", "--json"]
        )
        == 0
    )
    # eval recomputes the features window by window, exactly as training evaluated them
    assert json.loads(capsys.readouterr().out)["lightgbm"]["ndcg@10"] == pytest.approx(trained)


def test_train_on_an_empty_store_is_a_clear_error(setup, capsys, tmp_path):
    root, _ = setup
    rc = main(
        [
            "-q",
            "ranker",
            "train",
            "--events",
            str(tmp_path / "empty.db"),
            "--catalog",
            str(root / "catalog"),
            "--out",
            str(tmp_path / "m"),
        ]
    )
    assert rc == 1
    assert "events store is empty" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_import_hm_is_idempotent_and_skips_unknown_articles(tmp_path, capsys):
    articles = pd.DataFrame(
        {"article_id": ["0101", "0202"], "product_group_name": ["Shoes", "Bags"]}
    )
    articles.to_csv(tmp_path / "articles.csv", index=False)
    lines = [
        ("2020-01-01", "c1", "0101", 0.02),
        ("2020-01-01", "c1", "0101", 0.02),
        ("2020-01-03", "c2", "0202", 0.05),
        ("2020-01-04", "c2", "9999", 0.01),
    ]
    pd.DataFrame(lines, columns=["t_dat", "customer_id", "article_id", "price"]).assign(
        sales_channel_id=1
    ).to_csv(tmp_path / "transactions.csv", index=False)
    args = [
        "ranker",
        "import-hm",
        "--events",
        str(tmp_path / "e.db"),
        "--transactions",
        str(tmp_path / "transactions.csv"),
    ]
    assert main(args) == 0
    assert "3 purchases stored, 1 skipped" in capsys.readouterr().out
    assert main(args) == 0
    assert "0 purchases stored" in capsys.readouterr().out
    frame = EventStore(tmp_path / "e.db").to_frame()
    assert list(frame["product_id"]) == ["0101", "0101", "0202"]  # two units, one article
    assert frame["category"].iloc[0] == "shoes"
    assert (
        main(
            [
                "events",
                "export",
                "--events",
                str(tmp_path / "e.db"),
                "--out",
                str(tmp_path / "e.parquet"),
            ]
        )
        == 0
    )
    assert len(pd.read_parquet(tmp_path / "e.parquet")) == 3
    capsys.readouterr()
    assert main(["events", "stats", "--events", str(tmp_path / "e.db")]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["purchase"] == 3 and stats["users"] == 2
