"""The site on real data: the IKEA gallery from the data root, real rooms, the real YOLO weights."""

from __future__ import annotations

import re

import pytest

from tests.test_web_helpers import ikea_catalog, web_config

pytestmark = [pytest.mark.shared, pytest.mark.slow]


@pytest.fixture(scope="module")
def ikea_app(tmp_path_factory, ikea_root, yolo_weights):
    from shopthelook.core.config import load_settings
    from shopthelook.pipeline import ShopTheLook
    from web import create_app, services_of

    data_root = str(ikea_root.parent)
    catalog, rooms = ikea_catalog(data_root)
    settings = load_settings(backbone="hvf", detector_weights=str(yolo_weights), threads=2)
    root = tmp_path_factory.mktemp("ikea-web")
    # the gallery is the data root's whole IKEA room list, as in the demo
    config = web_config(
        root, ShopTheLook(catalog, settings), None, SCENES="ikea", DATA_ROOT=data_root, TOP_K=6
    )
    app = create_app(config)
    yield app, catalog, rooms
    services_of(app).close()


def test_gallery_lists_every_ikea_room(ikea_app):
    app, _, rooms = ikea_app
    import pandas as pd

    expected = len(pd.read_csv(app.config["DATA_ROOT"] + "/ikea/rooms.csv"))
    body = app.test_client().get("/api/scenes").get_json()
    assert body["count"] == expected
    page = app.test_client().get("/").get_data(as_text=True)
    assert f'href="/scene/{rooms["scene_id"].iloc[0]}"' in page
    assert "Living Room" in page and "Bedroom" in page


def test_real_room_objects_are_searched_in_their_categories(ikea_app):
    app, catalog, rooms = ikea_app
    scene_id = rooms["scene_id"].iloc[0]
    response = app.test_client().post("/api/look", json={"scene_id": scene_id, "top_k": 6})
    assert response.status_code == 200
    body = response.get_json()
    detected = [o for o in body["objects"] if o["source"] == "detector"]
    assert len(detected) >= 2, body["objects"]
    for obj in detected:
        assert 0 <= obj["box"][0] < obj["box"][2] <= body["width"]
        cats = {p["category"] for p in obj["products"]}
        assert not obj["category"] or cats <= set(catalog.categories())
    page = app.test_client().get(f"/scene/{scene_id}").get_data(as_text=True)
    assert page.count('class="dot') == len(body["objects"])


def test_product_page_names_the_rooms_that_have_it(ikea_app):
    from shopthelook.core.datasets import load_pairs

    app, catalog, rooms = ikea_app
    pairs = load_pairs("ikea", data_root=app.config["DATA_ROOT"])
    scene_id = rooms["scene_id"].iloc[0]
    product_id = next(
        p for p in pairs[pairs["scene_id"] == scene_id]["product_id"] if catalog.has_product(p)
    )
    page = app.test_client().get(f"/product/{product_id}").get_data(as_text=True)
    assert "Rooms that have it" in page
    assert f'href="/scene/{scene_id}"' in page
    body = app.test_client().get(f"/api/products/{product_id}").get_json()
    assert scene_id in {r["scene_id"] for r in body["rooms"]}
    assert re.match(r"^/img/catalog/", body["product"]["image_url"])
    assert app.test_client().get(body["product"]["image_url"]).status_code == 200
