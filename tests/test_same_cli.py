"""End to end through the CLI on drawn images: same train / eval, lookalikes, directions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from shopthelook.cli import main
from shopthelook.lookalikes import embed_cached
from tests.conftest import draw_image


@pytest.fixture
def group_csv(tmp_path):
    rows = []
    (tmp_path / "img").mkdir()
    for g in range(14):
        for j in range(4):
            name = f"img/g{g}_{j}.png"
            draw_image(100 * g + j, (40, 32)).save(tmp_path / name)
            rows.append({"image": name, "group": f"user{g}", "attribute": "dark" if g % 2 else "light",
                         "category": f"c{j % 2}"})  # fmt: skip
    rows.append({"image": "img/g0_0.png", "group": "loner", "attribute": "dark", "category": "c0"})
    path = tmp_path / "groups.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _run(capsys, *argv):
    code = main(["-q", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_train_eval_lookalikes_directions(tmp_path, group_csv, capsys, monkeypatch):
    monkeypatch.setenv("SHOPTHELOOK_DATA_ROOT", str(tmp_path))
    cache = tmp_path / "cache"
    monkeypatch.setattr("shopthelook.lookalikes.default_cache_dir", lambda: cache)
    head = tmp_path / "head"
    code, out, err = _run(capsys, "same", "train", "--groups", str(group_csv), "--backbone", "random",
                          "--out", str(head), "--epochs", "2", "--steps-per-epoch", "3",
                          "--groups-per-batch", "4", "--dim-out", "8", "--hidden", "16,16,16",
                          "--val-fraction", "0.3", "--test-fraction", "0.3")  # fmt: skip
    assert code == 0, err
    meta = json.loads((head / "head.json").read_text())
    assert meta["backbone"] == "random" and meta["trained_on"]["split"]["seed"] == 0
    assert "test_hit_rate_same" in meta["metrics"] and "backbone+SAME (test)" in out
    assert list(cache.glob("*.npz"))  # embeddings were cached

    code, out, err = _run(capsys, "same", "eval", "--groups", str(group_csv), "--head", str(head),
                          "--ks", "1,3")  # fmt: skip
    assert code == 0, err
    assert "random+SAME" in out and "HR@3=" in out

    code, out, err = _run(capsys, "lookalikes", "--groups", str(group_csv), "--group", "user3",
                          "--head", str(head), "-k", "3", "--json")  # fmt: skip
    assert code == 0, err
    hits = json.loads(out)
    assert len(hits) == 3 and "user3" not in [h["group"] for h in hits]

    # a one-image group still has lookalikes (its image is its representation)
    code, out, err = _run(capsys, "lookalikes", "--groups", str(group_csv), "--group", "loner",
                          "--backbone", "random", "-k", "2")  # fmt: skip
    assert code == 0 and len(out.strip().splitlines()) == 2, err

    code, _, err = _run(capsys, "lookalikes", "--groups", str(group_csv), "--group", "nobody",
                        "--backbone", "random")  # fmt: skip
    assert code == 1 and "unknown group id 'nobody'" in err

    code, _, err = _run(capsys, "same", "eval", "--groups", str(group_csv), "--head", str(head),
                        "--backbone", "hvf")  # fmt: skip
    assert code == 1 and "expects 256-d input but backbone 'hvf' gives" in err

    code, out, err = _run(capsys, "directions", "build", "--backbone", "random", "--labels",
                          str(group_csv), "--out", str(tmp_path / "dirs"))  # fmt: skip
    assert code == 0, err
    manifest = json.loads((tmp_path / "dirs" / "directions.json").read_text())
    assert manifest["names"] == ["dark", "light"] and manifest["kind"] == "labels"

    code, _, err = _run(capsys, "directions", "build", "--backbone", "random", "--adjectives",
                        "cozy", "--out", str(tmp_path / "d2"))  # fmt: skip
    assert code == 1 and "text tower" in err


def test_bad_group_files_are_one_line_errors(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    code, _, err = _run(
        capsys, "same", "eval", "--groups", str(empty), "--backbone", "random", "--split", "all"
    )
    assert code == 1 and "empty" in err and "Traceback" not in err
    singles = tmp_path / "singles.csv"
    singles.write_text("image,group\na.png,x\nb.png,y\n")
    code, _, err = _run(
        capsys, "same", "eval", "--groups", str(singles), "--backbone", "random", "--split", "all"
    )
    assert code == 1 and "at least 2 images" in err
    head = tmp_path / "broken"
    head.mkdir()
    (head / "head.json").write_text('{"kind": "same", "backbone": "random", "dim_in": 3')
    code, _, err = _run(capsys, "same", "eval", "--groups", str(singles), "--head", str(head))
    assert code == 1 and "corrupt" in err


def test_embed_cached_records_failures_and_reuses_the_cache(tmp_path):
    from embedder.random_backbone import RandomBackbone

    good = []
    for i in range(3):
        draw_image(i, (30, 30)).save(tmp_path / f"{i}.png")
        good.append(str(tmp_path / f"{i}.png"))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    paths = [good[0], str(tmp_path / "bad.png"), good[1], good[2], good[0]]
    backbone = RandomBackbone(dim=8)
    emb, ok = embed_cached(backbone, paths, cache_dir=tmp_path / "c")
    assert ok.tolist() == [True, False, True, True, True]
    np.testing.assert_allclose(emb[0], emb[4])
    (tmp_path / "1.png").unlink()  # the cache answers without reading the images again
    again, ok2 = embed_cached(backbone, paths, cache_dir=tmp_path / "c")
    np.testing.assert_allclose(again, emb) and ok2.tolist() == ok.tolist()


def test_catalog_build_uses_the_head_and_refuses_a_mismatched_one(tmp_path, group_csv, capsys):
    from embedder.same import SameConfig, SameHead

    products = tmp_path / "products.csv"
    rows = pd.read_csv(group_csv).head(8)
    pd.DataFrame({"product_id": [f"p{i}" for i in range(8)], "image": rows["image"],
                  "category": ["chair"] * 8}).to_csv(products, index=False)  # fmt: skip
    head = SameHead(SameConfig(backbone="random", dim_in=256, dim_out=16, hidden=(8, 8, 8)))
    head.save(tmp_path / "head")
    code, _, err = _run(capsys, "catalog", "build", "--products", str(products), "--backbone",
                        "random", "--head", str(tmp_path / "head"), "--out", str(tmp_path / "cat"))  # fmt: skip
    assert code == 0, err
    manifest = json.loads((tmp_path / "cat" / "manifest.json").read_text())
    assert manifest["head"] == head.head_id and manifest["dim"] == 16

    code, _, err = _run(capsys, "catalog", "build", "--products", str(products), "--backbone",
                        "hvf", "--head", str(tmp_path / "head"), "--out", str(tmp_path / "cat2"))  # fmt: skip
    assert code == 1 and "expects 256-d input" in err
    wrong = SameHead(SameConfig(backbone="yolo", dim_in=256, dim_out=16, hidden=(8, 8, 8)))
    wrong.save(tmp_path / "wrong")
    code, _, err = _run(capsys, "catalog", "build", "--products", str(products), "--backbone",
                        "random", "--head", str(tmp_path / "wrong"), "--out", str(tmp_path / "cat3"))  # fmt: skip
    assert code == 1 and "trained on backbone 'yolo'" in err
