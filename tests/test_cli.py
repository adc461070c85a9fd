"""The command line: the main jobs work, and bad input gets one line naming the problem."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from shopthelook.cli import main
from tests.conftest import draw_image
from tests.helpers import write_products


def run(capsys, *argv):
    code = main(["-q", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 1
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def hvf_catalog(tmp_path, capsys):
    csv = write_products(tmp_path / "src", 9)
    code, out, err = run(
        capsys,
        "catalog",
        "build",
        "--products",
        csv,
        "--out",
        tmp_path / "cat",
        "--backbone",
        "hvf",
    )
    assert code == 0, err
    assert "9 products in 3 categories" in out
    return tmp_path / "cat"


def test_catalog_info_add_remove(hvf_catalog, tmp_path, capsys):
    code, out, _ = run(capsys, "catalog", "info", hvf_catalog)
    assert code == 0 and json.loads(out)["backbone"] == "hvf"
    extra = write_products(tmp_path / "extra", 2, seed0=40)
    code, out, _ = run(capsys, "catalog", "add", "--catalog", hvf_catalog, "--products", extra)
    assert code == 0 and "now 11 products" in out
    code, out, _ = run(capsys, "catalog", "remove", "--catalog", hvf_catalog, "P040")
    assert code == 0 and "now 10 products" in out
    code, _, err = run(capsys, "catalog", "remove", "--catalog", hvf_catalog, "P999")
    assert_one_line_error(code, err, "not in the catalog")


def test_catalog_build_errors(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"sku": ["a"], "image": ["a.png"]}).to_csv(bad, index=False)
    code, _, err = run(capsys, "catalog", "build", "--products", bad, "--out", tmp_path / "o")
    assert_one_line_error(code, err, "bad.csv", "product_id")
    pd.DataFrame(
        {"product_id": ["a", "a"], "image": ["a.png", "b.png"], "category": ["x", "x"]}
    ).to_csv(bad, index=False)
    code, _, err = run(capsys, "catalog", "build", "--products", bad, "--out", tmp_path / "o")
    assert_one_line_error(code, err, "duplicate product_id")
    csv = write_products(tmp_path / "src", 3)
    code, _, err = run(
        capsys,
        "catalog",
        "build",
        "--products",
        csv,
        "--out",
        tmp_path / "o",
        "--backbone",
        "nosuchnet",
    )
    assert_one_line_error(code, err, "nosuchnet")
    code, _, err = run(
        capsys, "catalog", "build", "--products", tmp_path / "missing.csv", "--out", tmp_path / "o"
    )
    assert_one_line_error(code, err, "missing.csv", "no such file")
    assert not (tmp_path / "o").exists()


def bad_files(tmp_path):
    """Each bad input of the foundation issue, with a fragment its error must contain."""
    d = tmp_path / "bad"
    d.mkdir()
    (d / "zero.jpg").write_bytes(b"")
    buf = io.BytesIO()
    draw_image(1, (200, 200)).save(buf, "JPEG")
    (d / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (d / "text.jpg").write_text("hello, I am not a picture")
    Image.new("1", (9000, 9000)).save(d / "huge.png")
    return {
        d / "zero.jpg": "empty file",
        d / "truncated.jpg": "truncated",
        d / "text.jpg": "not an image",
        d / "huge.png": "over the limit",
        d / "missing.jpg": "no such file",
    }


@pytest.mark.shared
def test_look_on_bad_images_fails_cleanly(hvf_catalog, tmp_path, capsys, yolo_weights, monkeypatch):
    monkeypatch.setenv("SHOPTHELOOK_MAX_IMAGE_PIXELS", "50000000")
    for path, fragment in bad_files(tmp_path).items():
        code, _, err = run(capsys, "look", path, "--catalog", hvf_catalog)
        assert_one_line_error(code, err, path.name, fragment)


@pytest.mark.shared
def test_look_catalog_and_box_errors(hvf_catalog, tmp_path, capsys, yolo_weights):
    scene = tmp_path / "scene.png"
    draw_image(5, (160, 120)).save(scene)
    code, _, err = run(capsys, "look", scene, "--catalog", hvf_catalog, "--backbone", "yolo")
    assert_one_line_error(code, err, "built with backbone 'hvf'", "yolo")
    code, _, err = run(capsys, "look", scene, "--catalog", hvf_catalog, "--box", "500,500,600,600")
    assert_one_line_error(code, err, "outside the 160x120 image")
    code, _, err = run(capsys, "look", scene, "--catalog", tmp_path / "nocat")
    assert_one_line_error(code, err, "nocat", "no such folder")


def odd_images(tmp_path):
    d = tmp_path / "odd"
    d.mkdir()
    base = draw_image(7, (90, 60))
    base.convert("CMYK").save(d / "cmyk.jpg")
    Image.fromarray(np.asarray(base.convert("L"), np.uint16) * 257).save(d / "grey16.png")
    base.convert("P", palette=Image.Palette.ADAPTIVE).save(d / "palette.png")
    rgba = base.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(d / "alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    base.save(d / "rotated.jpg", exif=exif.tobytes())
    Image.new("RGB", (2, 2), (200, 10, 10)).save(d / "tiny.png")
    return sorted(d.iterdir())


@pytest.mark.shared
def test_look_on_odd_but_valid_images_works(hvf_catalog, tmp_path, capsys, yolo_weights):
    for path in odd_images(tmp_path):
        code, out, err = run(
            capsys, "look", path, "--catalog", hvf_catalog, "--json", "--top-k", "2"
        )
        assert code == 0, (path.name, err)
        data = json.loads(out)
        assert data["objects"], path.name
        if path.name == "rotated.jpg":
            assert (data["width"], data["height"]) == (60, 90)


@pytest.mark.shared
def test_match_records_failures_and_resumes(hvf_catalog, tmp_path, capsys, yolo_weights):
    folder = tmp_path / "scenes"
    folder.mkdir()
    for i in range(3):
        draw_image(20 + i, (120, 100)).save(folder / f"s{i}.png")
    (folder / "broken.jpg").write_text("not an image")
    out = tmp_path / "matches.jsonl"
    code, stdout, err = run(
        capsys, "match", "--catalog", hvf_catalog, "--scenes", folder, "--out", out, "--top-k", "3"
    )
    assert code == 0, err
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 4
    broken = next(x for x in lines if x["scene_id"] == "broken")
    assert "not an image" in broken["error"] and broken["objects"] == []
    assert all(x["error"] is None and x["objects"] for x in lines if x["scene_id"] != "broken")
    assert "failures: 1" in stdout
    code, stdout, _ = run(
        capsys, "match", "--catalog", hvf_catalog, "--scenes", folder, "--out", out
    )
    assert code == 0 and "4 already done, 0 processed" in stdout
    assert len(out.read_text().splitlines()) == 4
    code, stdout, _ = run(
        capsys,
        "match",
        "--catalog",
        hvf_catalog,
        "--scenes",
        folder,
        "--out",
        out,
        "--retry-failed",
    )
    assert "3 already done, 1 processed" in stdout
    assert len(out.read_text().splitlines()) == 4


def test_build_reports_why_the_detector_was_not_fitted(tmp_path, capsys):
    csv = write_products(tmp_path / "src", 6)
    base = ("catalog", "build", "--products", csv, "--backbone", "hvf")
    code, out, err = run(capsys, *base, "--out", tmp_path / "a")
    assert code == 0, err
    assert "detector: not fitted (no scene photos" in out and "--scenes" in out
    code, out, err = run(capsys, *base, "--out", tmp_path / "b", "--no-fit-detector")
    assert code == 0, err
    assert "detector: not fitted (--no-fit-detector)" in out
    with pytest.raises(SystemExit) as info:
        run(capsys, *base, "--out", tmp_path / "c", "--fit-scenes", "0")
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--fit-scenes" in err and "at least 1 synthetic scene" in err
    assert not (tmp_path / "c").exists()


def test_build_fits_the_detector_by_default_when_given_scenes(tmp_path, capsys, yolo_weights):
    from catalog.taught import has_detector

    csv = write_products(tmp_path / "src", 12)
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    for i in range(8):
        draw_image(100 + i, (320, 240)).save(scenes / f"room-{i}.jpg")
    argv = ("catalog", "build", "--products", csv, "--backbone", "hvf", "--out", tmp_path / "c")
    code, out, err = run(capsys, *argv, "--scenes", scenes, "--fit-scenes", "6")
    assert code == 0, err
    assert "detector: " in out and "not fitted" not in out, out
    assert has_detector(tmp_path / "c")
