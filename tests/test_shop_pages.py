"""Pages that feel like a shop, and the whole look over the API (Flask test client)."""

from __future__ import annotations

import io
import re

import pandas as pd
import pytest
from PIL import Image

from tests.test_web_helpers import build_pipeline, web_config, write_products, write_scenes


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from catalog import Catalog
    from embedder import create_embedder
    from shopthelook.core.config import load_settings
    from shopthelook.core.taxonomy import load_taxonomy
    from web import create_app, services_of

    root = tmp_path_factory.mktemp("shop")
    table = write_products(root / "src")
    products = pd.read_csv(table)
    products["currency"] = "EUR"
    products["url"] = [
        "javascript:alert(1)" if i == 1 else f"https://shop.example/p/{i}"
        for i in range(len(products))
    ]
    products["source_folder"] = "living"
    products.to_csv(table, index=False)
    settings = load_settings(backbone="hvf")
    catalog = Catalog.build(
        table,
        embedder=create_embedder(settings),
        taxonomy=load_taxonomy(),
        out=root / "catalog",
        settings=settings,
    )
    scenes = write_scenes(root / "scenes", catalog)
    app = create_app(web_config(root, build_pipeline(catalog), scenes))
    yield app
    services_of(app).close()


def test_api_whole_look_is_one_product_per_object_with_shop_fields(app):
    client = app.test_client()
    body = client.post("/api/look", json={"scene_id": "room-a", "whole_look": True}).get_json()
    look = body["whole_look"]
    assert look["method"] == "visual" and "no style-coherence model" in look["message"]
    assert [p["object"] for p in look["products"]] == list(range(len(body["objects"])))
    first = look["products"][0]
    assert first["url"] == f"/product/{first['product_id']}" and first["currency"] == "EUR"
    product = body["objects"][0]["products"][0]
    assert product["price"] == 10.0 and product["buy_url"] == "https://shop.example/p/0"
    plain = client.post("/api/look", json={"scene_id": "room-a"}).get_json()
    assert "whole_look" not in plain
    form = client.post("/api/look", data={"scene_id": "room-a", "whole_look": "true"})
    assert "whole_look" in form.get_json()
    bad = client.post("/api/look", json={"scene_id": "room-a", "whole_look": "maybe"})
    assert bad.status_code == 400 and "true or false" in bad.get_json()["error"]


def test_scene_page_strip_links_each_item_to_its_objects_dot(app):
    text = app.test_client().get("/scene/room-a").get_data(as_text=True)
    strip = text[text.index('class="whole-look"') :]
    objects = re.findall(r'class="look-object" href="([^"]+)" data-index="(\d+)"', strip)
    assert [i for _, i in objects] == ["0", "1"]
    assert objects[0][0] == "/scene/room-a" and objects[1][0] == "/scene/room-a?obj=1"
    assert "€10.00" in text and "€21.00 in all" in text
    assert "score" not in re.sub(r"<[^>]+>", " ", text).lower()  # no raw scores shown


def test_product_page_shows_what_a_shopper_reads(app):
    client = app.test_client()
    text = client.get("/product/P000").get_data(as_text=True)
    assert "Source folder" not in text and "living" not in text
    assert "€10.00" in text and 'href="https://shop.example/p/0"' in text
    hostile = client.get("/product/P001").get_data(as_text=True)
    assert "javascript:" not in hostile and "Buy at the shop" not in hostile
    api = client.get("/api/products/P000").get_json()["product"]
    assert api["buy_url"] == "https://shop.example/p/0" and api["url"] == "/product/P000"


def test_error_pages_talk_to_shoppers(app):
    client = app.test_client()
    missing = client.get("/scene/u-0000000000000000").get_data(as_text=True)
    assert "could not find that room or photo" in missing
    buffer = io.BytesIO()
    Image.new("RGB", (1200, 1000), "white").save(buffer, "JPEG", quality=5)
    token = re.search(
        r'name="csrf_token" value="([^"]+)"', client.get("/").get_data(as_text=True)
    ).group(1)
    response = client.post(
        "/upload",
        data={"image": (io.BytesIO(buffer.getvalue()), "big.jpg"), "csrf_token": token},
        content_type="multipart/form-data",
    )
    text = response.get_data(as_text=True)
    assert response.status_code == 413 and "max_image_pixels" not in text
    assert "send a smaller photo" in text


def test_an_upload_stored_by_another_worker_is_found(tmp_path):
    from web.uploads import UploadPolicy, UploadStore

    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), "red").save(buffer, "PNG")
    one = UploadStore(tmp_path, UploadPolicy())
    two = UploadStore(tmp_path, UploadPolicy())  # another process's view of the same folder
    receipt = one.add(buffer.getvalue(), owner="o1", max_pixels=10_000)
    assert two.path(receipt.scene_id) is not None
    assert two.owned_by("o1") == [receipt.scene_id]
