"""Catalogs under bad tables and faults: a rebuild that reads nothing keeps the old catalog, the
swap is atomic for readers, stale temporaries go, inconsistent catalogs are refused, product
tables are checked (ids, categories, encodings, separators)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog import Catalog, CatalogError, ProductTableError
from tests.helpers import build_cli, write_products
from tests.helpers import run_cli as run


@pytest.fixture
def built(tmp_path, capsys):
    csv = write_products(tmp_path / "src", 12)
    code, _, err = build_cli(capsys, csv, tmp_path / "cat")
    assert code == 0, err
    return csv, tmp_path / "cat"


# -- item 3 ---------------------------------------------------------------------------------
def test_a_rebuild_that_reads_no_image_fails_and_keeps_the_catalog(built, tmp_path, capsys):
    csv, out = built
    code, _, err = build_cli(capsys, csv, out, "--images-root", tmp_path / "WRONG")
    assert code == 1 and "no product photo could be read" in err and "--images-root" in err
    assert len(Catalog.load(out)) == 12


def test_a_rebuild_that_loses_most_products_needs_a_flag(built, tmp_path, capsys):
    csv, out = built
    table = pd.read_csv(csv)
    table.loc[3:, "image"] = "img/missing.png"  # 3 of 12 readable
    table.to_csv(tmp_path / "src" / "few.csv", index=False)
    few = tmp_path / "src" / "few.csv"
    code, _, err = build_cli(capsys, few, out)
    assert code == 1 and "--min-kept-share" in err and len(Catalog.load(out)) == 12
    code, _, err = build_cli(capsys, few, out, "--min-kept-share", "0")
    assert code == 0, err
    assert len(Catalog.load(out)) == 3


def test_an_add_that_reads_no_image_changes_nothing(built, tmp_path, capsys):
    _, out = built
    extra = write_products(tmp_path / "extra", 2, seed0=50)
    for image in (tmp_path / "extra" / "img").iterdir():
        image.unlink()
    code, _, err = run(capsys, "catalog", "add", "--catalog", out, "--products", extra)
    assert code == 1 and "unchanged" in err and len(Catalog.load(out)) == 12


@pytest.mark.parametrize("suffix", [",extra", ",x,y", None])
def test_a_table_whose_every_row_is_ragged_is_refused(built, tmp_path, capsys, suffix):
    csv, out = built
    lines = csv.read_text().splitlines()
    rows = [line + suffix if suffix else ",".join(line.split(",")[:2]) for line in lines[1:]]
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("\n".join([lines[0], *rows]) + "\n")
    code, _, err = build_cli(capsys, ragged, out, "--images-root", tmp_path / "src")
    assert code == 1 and "number of fields" in err
    assert len(Catalog.load(out)) == 12


# -- item 5 ---------------------------------------------------------------------------------
def _watch_renames(monkeypatch, out: Path) -> list[str]:
    """Check after every rename of a write that ``out`` opens as a whole catalog."""
    seen: list[str] = []
    real = os.replace

    def checked(src, dst, *a, **k):
        real(src, dst, *a, **k)
        seen.append(f"{Path(src).name} -> {Path(dst).name}")
        if not (out / "manifest.json").is_file() or not (out / "embeddings.npy").is_file():
            raise AssertionError(f"{out} is not a whole catalog after {seen[-1]}")

    monkeypatch.setattr(os, "replace", checked)
    return seen


def test_the_swap_never_leaves_the_path_without_a_catalog(built, tmp_path, monkeypatch, capsys):
    csv, out = built
    seen = _watch_renames(monkeypatch, out)
    extra = write_products(tmp_path / "extra", 2, seed0=60)
    code, _, err = run(capsys, "catalog", "add", "--catalog", out, "--products", extra)
    assert code == 0, err
    code, _, err = build_cli(capsys, csv, out)
    assert code == 0, err
    assert seen and len(Catalog.load(out)) == 12


def test_an_old_plain_folder_catalog_loads_and_is_swapped_atomically(
    built, tmp_path, monkeypatch, capsys
):
    import shutil

    _, out = built
    plain = tmp_path / "plain"
    shutil.copytree(out.resolve(), plain)  # a catalog as earlier versions saved it
    assert len(Catalog.load(plain)) == 12
    seen = _watch_renames(monkeypatch, plain)
    code, _, err = run(capsys, "catalog", "remove", "--catalog", plain, "P000")
    assert code == 0, err
    assert plain.is_symlink() and len(Catalog.load(plain)) == 11 and seen


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporaries_of_killed_writers_are_removed_by_the_next_write(built, tmp_path, capsys):
    _, out = built
    dead, alive = _dead_pid(), os.getppid()
    stale = [f".cat.tmp-{dead}-1", f".cat.link-{dead}-2", f".cat.old-{dead}-3", f".cat.v-{dead}-4"]
    for name in stale:
        (tmp_path / name / "indexes").mkdir(parents=True)
    (tmp_path / f".cat.tmp-{alive}-5").mkdir()  # a writer still at work: left alone
    code, _, err = run(capsys, "catalog", "remove", "--catalog", out, "P001")
    assert code == 0, err
    left = {p.name for p in tmp_path.iterdir() if p.name.startswith(".cat.")}
    assert not left & set(stale)
    assert f".cat.tmp-{alive}-5" in left
    versions = [n for n in left if n.startswith(".cat.v-")]
    assert len(versions) == 2  # the current one and the one before (for readers still loading)
    code, _, _ = run(capsys, "catalog", "remove", "--catalog", out, "P002")
    versions = [p for p in tmp_path.iterdir() if p.name.startswith(".cat.v-")]
    assert len(versions) == 2 and out.resolve() in versions


# -- item 6 ---------------------------------------------------------------------------------
def test_manifest_counts_that_disagree_with_the_indexes_are_refused(built):
    _, out = built
    manifest_file = out / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["counts"]["chair"] += 5
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(CatalogError, match="manifest counts disagree"):
        Catalog.load(out)
    manifest["counts"]["chair"] -= 5
    manifest["n_products"] = 99
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(CatalogError, match="manifest says 99 products"):
        Catalog.load(out)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_embeddings_with_nan_or_inf_are_refused(built, bad):
    _, out = built
    vectors = np.load(out / "embeddings.npy")
    vectors[3, 5] = bad
    np.save(out / "embeddings.npy", vectors)
    with pytest.raises(CatalogError, match="NaN or infinite"):
        Catalog.load(out)


# -- item 11 --------------------------------------------------------------------------------
def _table(tmp_path, rows, name="t.csv", **to_csv):
    path = tmp_path / "src" / name
    pd.DataFrame(rows).to_csv(path, index=False, **to_csv)
    return path


@pytest.mark.parametrize(
    "product_id, needle",
    [("", "empty product_id"), ("   ", "empty product_id"), ("a/b", "contain '/'"), ("..", "'..'")],
)
def test_bad_product_ids_are_refused(built, tmp_path, capsys, product_id, needle):
    rows = [{"product_id": "ok-1", "image": "img/p000.png", "category": "chair"}]
    rows.append({"product_id": product_id, "image": "img/p001.png", "category": "chair"})
    path = _table(tmp_path, rows)
    code, _, err = build_cli(capsys, path, tmp_path / "new")
    assert code == 1 and needle in err
    assert not (tmp_path / "new").exists()


def test_unknown_categories_are_reported(tmp_path, capsys):
    rows = [
        {"product_id": f"Q{i}", "image": f"img/p00{i}.png", "category": c}
        for i, c in enumerate(["chair", "spaceship", "spaceship", "warp drive"])
    ]
    write_products(tmp_path / "src", 4)
    path = _table(tmp_path, rows)
    code, out, err = build_cli(capsys, path, tmp_path / "c")
    assert code == 0, err
    assert "3 product(s) in 2 categories the taxonomy does not know" in out
    assert "spaceship (2)" in out and "warp drive (1)" in out
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["unknown_categories"] == {"spaceship": 2, "warp drive": 1}


@pytest.mark.parametrize(
    "options, to_csv, needle",
    [
        (["--encoding", "latin-1"], {"encoding": "latin-1"}, "--encoding"),
        (["--encoding", "utf-16"], {"encoding": "utf-16"}, "--encoding"),
        (["--sep", ";"], {"sep": ";"}, "--sep"),
        (["--sep", "\\t"], {"sep": "\t"}, "--sep"),
    ],
)
def test_encoding_and_separator_options(tmp_path, capsys, options, to_csv, needle):
    write_products(tmp_path / "src", 3)
    rows = [
        {"product_id": f"É{i}", "image": f"img/p00{i}.png", "category": "chair", "name": "Fåtölj"}
        for i in range(3)
    ]
    path = _table(tmp_path, rows, **to_csv)
    code, _, err = build_cli(capsys, path, tmp_path / "no")
    assert code == 1 and needle in err and "Traceback" not in err
    code, out, err = build_cli(capsys, path, tmp_path / "yes", *options)
    assert code == 0, err
    assert set(Catalog.load(tmp_path / "yes").products["product_id"]) == {"É0", "É1", "É2"}


# -- property: the product-table reader ----------------------------------------------------
ids = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", " ", "nan", "NA", "None", "a/b", "..", ".", "x\ty", "P1", " P1 "]),
    st.text(min_size=190, max_size=210, alphabet="ab"),
)
tables = st.lists(
    st.tuples(ids, st.text(max_size=8) | st.sampled_from(["chair", "sofa", "spaceship"])),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rows=tables)
def test_the_product_table_reader_accepts_only_tables_a_catalog_can_serve(tmp_path, rows):
    from catalog.product_table import prepare_product_table
    from shopthelook.core.taxonomy import load_taxonomy

    path = tmp_path / "p.csv"
    frame = pd.DataFrame(
        {"product_id": [r[0] for r in rows], "image": "a.png", "category": [r[1] for r in rows]}
    )
    frame.to_csv(path, index=False)
    try:
        table = prepare_product_table(path, taxonomy=load_taxonomy())
    except ProductTableError as exc:
        assert str(path) in str(exc)
        return
    got = table["product_id"].tolist()
    assert got == [r[0].strip() for r in rows]  # every row, its id as written (stripped)
    assert len(set(got)) == len(got)
    for pid in got:
        assert pid and pid not in (".", "..") and "/" not in pid and len(pid) <= 200
        assert not any(ord(c) < 32 for c in pid)
    assert table["image"].map(lambda p: Path(p).is_absolute()).all()
    assert table["category"].map(lambda c: isinstance(c, str) and 0 < len(c) <= 100).all()
