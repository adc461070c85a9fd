"""Builders shared by tests: small product tables and catalogs from drawn images."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.conftest import draw_image

CATEGORIES = ("chair", "sofa", "vase")


def write_products(folder: Path, n: int = 12, *, seed0: int = 0) -> Path:
    """A products.csv with n drawn product photos over three categories; returns the CSV path."""
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        name = f"p{seed0 + i:03d}.png"
        draw_image(seed0 + i, (64, 64)).save(folder / "img" / name)
        rows.append(
            {
                "product_id": f"P{seed0 + i:03d}",
                "image": f"img/{name}",
                "category": CATEGORIES[i % len(CATEGORIES)],
                "name": f"Product {seed0 + i}",
            }
        )
    path = folder / "products.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def build_catalog(folder: Path, backbone: str = "hvf", n: int = 12):
    from catalog import Catalog
    from embedder import create_embedder
    from shopthelook.core.config import load_settings
    from shopthelook.core.taxonomy import load_taxonomy

    settings = load_settings(backbone=backbone)
    table = write_products(folder / "src", n)
    return Catalog.build(
        table,
        embedder=create_embedder(settings),
        taxonomy=load_taxonomy(),
        out=folder / "catalog",
        settings=settings,
    )


class ShopCatalog:
    """What LightGBMRanker needs from a catalog, over a synthetic shop (ranker.synthetic)."""

    def __init__(self, shop):
        self.products = shop.products.assign(image="")
        self.dim = shop.space.dim
        self._space = shop.space

    def embeddings(self, ids):
        return self._space.vectors[self._space.rows(ids)]

    def search(self, queries, category, k):
        return self._space.search(queries, category, k)


def run_cli(capsys, *argv, quiet: bool = True):
    """``shopthelook [-q] ARGV``: (exit code, stdout, stderr)."""
    from shopthelook.cli import main

    code = main((["-q"] if quiet else []) + [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def build_cli(capsys, table, out, *extra, quiet: bool = True):
    """``shopthelook catalog build`` of a table with the cheap hvf backbone."""
    args = ("catalog", "build", "--products", table, "--out", out, "--backbone", "hvf")
    return run_cli(capsys, *args, *extra, quiet=quiet)
