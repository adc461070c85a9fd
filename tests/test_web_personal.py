"""Personalisation through the site: a trained LightGBM ranker, histories made on the site.

A synthetic shop (ranker.synthetic: users with planted style preferences) is served as a
catalog; a ranker is trained on its purchase log; then two new users save products of two
different styles through POST /api/events and ask for the same scene: they get different
orders, each leaning to their own style, with the ranker's reasons on the page.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from detector.base import Detector
from shopthelook.core.types import Box, Detection

pytestmark = pytest.mark.slow


class OneObject(Detector):
    name = "one-object"

    def detect(self, image):
        return [Detection(Box(10, 10, 100, 100), "thing", 0.9, "cat0", ("cat0",))]


@pytest.fixture(scope="module")
def shop_site(tmp_path_factory):
    from catalog import FORMAT_VERSION, Catalog
    from embedder.head import Embedder
    from embedder.random_backbone import RandomBackbone
    from ranker.events import EventStore
    from ranker.synthetic import make_shop
    from ranker.train import TrainConfig, save_model
    from ranker.trainer import train_from_events
    from shopthelook.core.config import load_settings
    from shopthelook.pipeline import ShopTheLook
    from web import create_app, services_of
    from web.wiring import load_ranker

    root = tmp_path_factory.mktemp("personal")
    shop = make_shop(n_users=90, n_categories=2, per_category=60, purchases_per_user=12, seed=3)
    (root / "img").mkdir()
    paths = []
    for i, pid in enumerate(shop.products["product_id"]):
        path = root / "img" / f"{pid}.png"
        Image.new("RGB", (8, 8), (i % 256, (7 * i) % 256, 90)).save(path)
        paths.append(str(path))
    # the shop's products cost what its purchase log says (10 + style)
    products = shop.products.assign(
        image=paths,
        row_id=np.arange(len(paths), dtype=np.int64),
        price=10.0 + shop.products["style"],
    )
    manifest = {
        "format_version": FORMAT_VERSION,
        "backbone": "random",
        "head": "identity",
        "dim": shop.space.dim,
        "exact_index_max": 20_000,
        "next_row_id": len(paths),
    }
    Catalog._assemble(products, shop.space.vectors, manifest).save(root / "catalog")
    catalog = Catalog.load(root / "catalog")

    result = train_from_events(
        shop.events,
        shop.space,
        config=TrainConfig(n_candidates=40, n_estimators=150),
        attractiveness=shop.attractiveness,
    )
    save_model(
        root / "model",
        result.booster,
        result.final_builder,
        metrics=result.table,
        train_info=result.info,
        catalog_info={"dim": shop.space.dim},
    )
    events_path = root / "events.sqlite"
    with EventStore(events_path) as store:  # the shop's past: what the site's users did before
        past = shop.events.assign(ts=shop.events["ts"].dt.floor("us"))  # the store keeps µs
        past = past.astype(object).where(past.notna(), None)
        assert store.log_many(past.to_dict("records")) == len(past)

    ranker, note = load_ranker(root / "model", catalog, events_path)
    assert ranker.name == "lightgbm" and note is None
    pipeline = ShopTheLook(
        catalog,
        load_settings(threads=1),
        detector=OneObject(),
        embedder=Embedder(RandomBackbone(shop.space.dim)),
        ranker=ranker,
    )
    (root / "scenes").mkdir()
    Image.new("RGB", (128, 128), (200, 190, 180)).save(root / "scenes" / "room.png")
    app = create_app(
        {
            "PIPELINE": pipeline,
            "SCENES": str(root / "scenes"),
            "EVENTS": str(events_path),
            "INSTANCE_PATH": str(root / "instance"),
            "TOP_K": 10,
        }
    )
    yield app, shop
    services_of(app).close()


def test_two_users_with_different_histories_see_different_orders(shop_site, monkeypatch):
    import ranker.lgbm

    monkeypatch.setattr(ranker.lgbm, "REFRESH_SECONDS", 0.0)  # read the new events at once
    app, shop = shop_site
    client = app.test_client()
    style = dict(zip(shop.products["product_id"], shop.products["style"], strict=True))
    category = dict(zip(shop.products["product_id"], shop.products["category"], strict=True))
    styles = sorted(set(style.values()), key=lambda s: -sum(v == s for v in style.values()))
    liked = {"ann": styles[0], "ben": styles[1]}
    for user, s in liked.items():
        # saved in the other category: the style has to carry over to the scene's object
        mine = [p for p in style if style[p] == s and category[p] == "cat1"][:6]
        events = [{"event_type": "save", "user_id": user, "product_id": p} for p in mine]
        response = client.post("/api/events", json={"events": events})
        assert response.status_code == 201

    def top(user):
        body = client.post(
            "/api/look", json={"scene_id": "room", "user": user, "top_k": 10}
        ).get_json()
        return [p["product_id"] for p in body["objects"][0]["products"]]

    ann, ben = top("ann"), top("ben")
    assert ann != ben

    # each list leans to its own user's style
    def share(ids, s):
        return sum(style[p] == s for p in ids) / len(ids)

    assert share(ann, liked["ann"]) > share(ben, liked["ann"])
    assert share(ben, liked["ben"]) > share(ann, liked["ben"])

    # the pages show the same: the cookie user decides the order; reasons come from the ranker
    pages = {}
    for user in liked:
        c = app.test_client()
        c.set_cookie("stl_user", user)
        text = c.get("/scene/room").get_data(as_text=True)
        pages[user] = re.findall(r'data-product-id="([^"]+)"', text)
        assert "picked for you" in text and 'class="reason"' in text
    assert pages["ann"] != pages["ben"]
