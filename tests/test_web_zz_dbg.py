from tests.test_web_personal import *  # noqa
from tests.test_web_personal import shop_site  # noqa

def test_dbg(shop_site, monkeypatch):
    import ranker.lgbm
    from web import services_of
    monkeypatch.setattr(ranker.lgbm, "REFRESH_SECONDS", 0.0)
    app, shop = shop_site
    client = app.test_client()
    style = dict(zip(shop.products["product_id"], shop.products["style"]))
    category = dict(zip(shop.products["product_id"], shop.products["category"]))
    for user, s in {"ann": 0, "ben": 1}.items():
        mine = [p for p in style if style[p] == s and category[p] == "cat1"][:6]
        client.post("/api/events", json={"events": [{"event_type": "save", "user_id": user, "product_id": p} for p in mine]})
    svc = services_of(app)
    r = svc.pipeline.ranker
    b = r.builder()
    print("profiles", len(b.profiles.profiles), "ann" in b.profiles, "ben" in b.profiles)
    for u in ("ann", "ben"):
        res = svc.pipeline.shop_the_look(str(svc.scenes.get("room").image), user=u, top_k=5)
        for h in res.objects[0].products[:3]:
            print(u, h.product_id, style[h.product_id], round(h.score, 3), h.reason, {k: round(v, 3) for k, v in h.features.items() if "style" in k or "cold" in k or "visual" in k})
