"""Builders for the web tests: a tiny real catalog, drawn scenes, a real pipeline and the app.

(No tests here; the web, page and browser tests import these.)
"""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd
from PIL import Image

from detector.base import Detector
from shopthelook.core.types import Box, Detection
from tests.conftest import draw_image

CATEGORIES = ("chair", "sofa", "vase")
#: a product name that would run script if the pages did not escape it
HOSTILE_NAME = '<script>window.pwned=1</script><b>Bold & "quoted"</b>'
SCENE_SIZE = (256, 128)
#: where the fixed detector "finds" the two pasted products in every drawn scene
BOXES = [
    Detection(Box(20, 30, 84, 94), "chair", 0.9, "chair", ("chair",)),
    Detection(Box(160, 30, 224, 94), "couch", 0.8, "sofa", ("sofa",)),
]


class FixedDetector(Detector):
    """Reports the same two boxes for any scene: the web layer, not detection, is under test."""

    name = "fixed"

    def detect(self, image):
        return list(BOXES)


def write_products(folder: Path, n: int = 12) -> Path:
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        name = f"p{i:03d}.png"
        draw_image(100 + i, (64, 64)).save(folder / "img" / name)
        rows.append(
            {
                "product_id": f"P{i:03d}",
                "image": f"img/{name}",
                "category": CATEGORIES[i % len(CATEGORIES)],
                "name": HOSTILE_NAME if i == 2 else f"Product {i}",
                "color": "dark" if i % 2 else "light",
                "price": 10.0 + i,
            }
        )
    path = folder / "products.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def write_scenes(folder: Path, catalog) -> Path:
    """Two drawn rooms with products pasted where FixedDetector reports them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (left, right) in {"room-a": ("P000", "P001"), "room-b": ("P003", "P004")}.items():
        scene = Image.new("RGB", SCENE_SIZE, (235, 232, 225))
        scene.paste(Image.open(catalog.product(left)["image"]).convert("RGB"), (20, 30))
        scene.paste(Image.open(catalog.product(right)["image"]).convert("RGB"), (160, 30))
        scene.save(folder / f"{name}.png")
    return folder


def build_catalog(folder: Path, n: int = 12):
    from catalog import Catalog
    from embedder import create_embedder
    from shopthelook.core.config import load_settings
    from shopthelook.core.taxonomy import load_taxonomy

    settings = load_settings(backbone="hvf")
    table = write_products(folder / "src", n)
    return Catalog.build(
        table,
        embedder=create_embedder(settings),
        taxonomy=load_taxonomy(),
        out=folder / "catalog",
        settings=settings,
    )


def build_directions(catalog):
    """Label directions ("dark", "light") from the products' colour column: real OAAR code."""
    from embedder.oaar import label_directions

    products = catalog.products
    return label_directions(
        catalog.embeddings(products["product_id"].tolist()),
        products["color"].tolist(),
        products["category"].tolist(),
        backbone=catalog.backbone,
        head_id=catalog.head,
        min_items=2,
    )


def build_pipeline(catalog, ranker=None):
    from shopthelook.core.config import load_settings
    from shopthelook.pipeline import ShopTheLook

    settings = load_settings(backbone="hvf", threads=1)
    return ShopTheLook(
        catalog,
        settings,
        detector=FixedDetector(),
        ranker=ranker,
        directions=build_directions(catalog),
    )


def web_config(root: Path, pipeline, scenes: Path, **extra) -> dict:
    return {
        "PIPELINE": pipeline,
        "SCENES": str(scenes),
        "EVENTS": str(root / "events.sqlite"),
        "INSTANCE_PATH": str(root / "instance"),
        "MAX_UPLOAD_BYTES": 300_000,
        "MAX_IMAGE_PIXELS": 1_000_000,
        "TOP_K": 4,
        # one test client sends every request: rate limits have their own test
        "RATELIMIT_ENABLED": False,
        **extra,
    }


def csrf_token(client, path: str = "/") -> str:
    """The CSRF token a page of the site puts in its forms (for the client's session)."""
    import re

    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def png_bytes(size=(200, 120), seed: int = 7) -> bytes:
    import io

    buffer = io.BytesIO()
    draw_image(seed, size).save(buffer, "PNG")
    return buffer.getvalue()


@functools.lru_cache(maxsize=1)
def ikea_catalog(data_root: str, n_sample: int = 250):
    """A catalog of real IKEA products (those in the first two living rooms plus a sample), hvf
    backbone; built once per test process into a temporary folder."""
    import tempfile

    from catalog import Catalog
    from embedder import create_embedder
    from shopthelook.core.config import load_settings
    from shopthelook.core.datasets import load_pairs, load_products, load_scenes
    from shopthelook.core.taxonomy import load_taxonomy

    settings = load_settings(backbone="hvf", data_root=data_root)
    scenes = load_scenes("ikea", data_root=data_root)
    rooms = scenes[scenes["room_category"] == "Living Room"].head(2)
    pairs = load_pairs("ikea", data_root=data_root)
    products = load_products("ikea", data_root=data_root)
    wanted = set(pairs[pairs["scene_id"].isin(rooms["scene_id"])]["product_id"])
    table = pd.concat(
        [products[products["product_id"].isin(wanted)], products.sample(n_sample, random_state=0)]
    ).drop_duplicates("product_id")
    out = Path(tempfile.mkdtemp(prefix="stl-web-ikea-")) / "catalog"
    catalog = Catalog.build(
        table,
        embedder=create_embedder(settings),
        taxonomy=load_taxonomy(),
        out=out,
        settings=settings,
    )
    return catalog, rooms.reset_index(drop=True)
