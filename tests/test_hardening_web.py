"""The site under bad input and abuse: 4xx instead of 5xx, no open redirect, CSRF tokens,
private uploads that expire, quotas and rate limits, honest event answers, /healthz."""

from __future__ import annotations

import io
import os
import time

import pytest

from tests.test_web_helpers import (
    build_catalog,
    build_pipeline,
    csrf_token,
    png_bytes,
    web_config,
    write_scenes,
)

CLICK = {"event_type": "click", "user_id": "u1", "product_id": "P000"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("hard")
    catalog = build_catalog(root)
    return root, catalog, write_scenes(root / "scenes", catalog), build_pipeline(catalog)


def make_app(env, name, **extra):
    from web import create_app

    root, _, scenes, pipeline = env
    return create_app(web_config(root / name, pipeline, scenes, **extra))


@pytest.fixture(scope="module")
def app(env):
    from web import services_of

    app = make_app(env, "main")
    yield app
    services_of(app).close()


@pytest.fixture
def client(app):
    return app.test_client()


def json_error(response, status):
    text = response.get_data(as_text=True)
    assert response.status_code == status, text[:300]
    assert response.is_json and "Traceback" not in text
    body = response.get_json()
    assert body["status"] == status and body["error"]
    return body["error"]


def client_at(app, address: str):
    """A test client whose requests come from another address (rate limits are per address)."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def upload(client, seed=1, **fields):
    data = {"image": (io.BytesIO(png_bytes(seed=seed)), "room.png"), **fields}
    return client.post("/api/look", data=data, content_type="multipart/form-data")


# -- item 4: what used to be a 5xx ----------------------------------------------------------
@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/look", '{"scene_id": "room-a", "top_k": Infinity}'),
        ("/api/look", '{"scene_id": "room-a", "top_k": 1e400}'),
        ("/api/look", '{"scene_id": "room-a", "top_k": NaN}'),
        ("/api/look", '{"scene_id": "room-a", "top_k": true}'),
        ("/api/look", '{"scene_id": "room-a", "top_k": 10000000000000000000000}'),
        ("/api/look", '{"scene_id": "room-a", "box": [0, 0, 1e400, 5]}'),
        (
            "/api/look",
            '{"scene_id": "room-a", "box": [0, 0, 10000000000000000000000' + "0" * 400 + ", 5]}",
        ),
        ("/api/look", "[" * 100_000 + "]" * 100_000),
        ("/api/look", '{"a":' * 50 + "1" + "}" * 50),
        ("/api/events", "[" * 100_000),
        (
            "/api/events",
            '{"event_type": "click", "user_id": "u1", "product_id": "P000", "ts": 1e12}',
        ),
        (
            "/api/events",
            '{"event_type": "click", "user_id": "u1", "product_id": "P000", "ts": -1e12}',
        ),
        (
            "/api/events",
            '{"event_type": "click", "user_id": "u1", "product_id": "P000", '
            '"ts": "9999-12-31T23:59:59-01:00"}',
        ),
        (
            "/api/events",
            '{"event_type": "click", "user_id": "u1", "product_id": "P000", "position": 1e400}',
        ),
        (
            "/api/events",
            '{"event_type": "click", "user_id": "u1", "product_id": "P000", '
            '"position": 100000000000000000000}',
        ),
    ],
)
def test_absurd_json_is_a_400_before_any_work(client, path, body):
    json_error(client.post(path, data=body, content_type="application/json"), 400)


def test_a_huge_json_body_is_413(client):
    body = '{"scene_id": "' + "x" * 2_000_000 + '"}'
    json_error(client.post("/api/look", data=body, content_type="application/json"), 413)


def test_one_overflowing_event_does_not_break_later_writes(app, client):
    """Item 1 through the API: refused with 400, and the next event is stored (201)."""
    from web import services_of

    bad = {**CLICK, "position": 100000000000000000000}
    json_error(client.post("/api/events", json=bad), 400)
    ok = client.post("/api/events", json={**CLICK, "request_id": "after-bad"})
    assert ok.status_code == 201 and ok.get_json()["logged"] == 1
    services = services_of(app)
    assert services.events.count(request_id="after-bad") == 1
    assert client.get("/healthz").get_json()["status"] == "ok"


# -- item 7: redirects and CSRF -------------------------------------------------------------
@pytest.mark.parametrize(
    "target",
    [
        "/\t/evil.example",
        "/\n/evil.example",
        "\t//evil.example",
        "//evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "/scene/room-a\r\nSet-Cookie: x=1",
        "/" + "a" * 5000,
    ],
)
def test_next_never_leaves_the_site(client, target):
    token = csrf_token(client)
    response = client.post("/user", data={"user_id": "alice", "next": target, "csrf_token": token})
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith("/") and not location.startswith("//"), location
    assert "evil" not in location and "\n" not in location and "\r" not in location
    saved = client.post(
        "/product/P001/save", data={"next": target, "csrf_token": token}, follow_redirects=False
    )
    assert saved.status_code == 303
    assert saved.headers["Location"].startswith("/") and "evil" not in saved.headers["Location"]


def test_a_same_site_next_is_kept(client):
    token = csrf_token(client)
    response = client.post(
        "/user", data={"user_id": "alice", "next": "/scene/room-b?obj=1", "csrf_token": token}
    )
    assert response.headers["Location"] == "/scene/room-b?obj=1"


@pytest.mark.parametrize(
    "path, fields",
    [
        ("/user", lambda: {"user_id": "mallory", "next": "/"}),
        ("/product/P001/save", lambda: {"next": "/"}),
        ("/upload", lambda: {"image": (io.BytesIO(png_bytes(seed=3)), "x.png")}),
    ],
)
def test_state_changing_forms_need_the_csrf_token(app, client, path, fields):
    from web import services_of

    client.set_cookie("stl_user", "victim")
    response = client.post(path, data=fields(), content_type="multipart/form-data")
    assert response.status_code == 400 and "form is out of date" in response.get_data(as_text=True)
    assert "stl_user=mallory" not in response.headers.get("Set-Cookie", "")
    services = services_of(app)
    services.events.flush()
    assert services.events.count(user_id="victim", event_type="save") == 0
    forged = client.post(
        path, data={**fields(), "csrf_token": "forged"}, content_type="multipart/form-data"
    )
    assert forged.status_code == 400


# -- item 8: uploads are private and expire ---------------------------------------------------
def test_uploads_are_listed_only_for_the_browser_that_made_them(env):
    app = make_app(env, "private")
    owner, other = app.test_client(), app.test_client()
    response = owner.post(
        "/upload",
        data={
            "image": (io.BytesIO(png_bytes(seed=21)), "mine.png"),
            "csrf_token": csrf_token(owner),
        },
        content_type="multipart/form-data",
    )
    scene_url = response.headers["Location"]
    scene_id = scene_url.rsplit("/", 1)[1]
    assert scene_url in owner.get("/").get_data(as_text=True)
    assert scene_id in {s["scene_id"] for s in owner.get("/api/scenes").get_json()["scenes"]}
    assert scene_url not in other.get("/").get_data(as_text=True)
    assert scene_id not in {s["scene_id"] for s in other.get("/api/scenes").get_json()["scenes"]}
    other.set_cookie("stl_user", owner.get_cookie("stl_user").value)  # the same shopper name
    assert scene_url not in other.get("/").get_data(as_text=True)
    assert other.get(scene_url).status_code == 200  # the unguessable link can be shared
    # an upload through the API belongs to no browser: opened by id, listed for nobody
    api = upload(owner, seed=22).get_json()["scene_id"]
    assert api not in {s["scene_id"] for s in owner.get("/api/scenes").get_json()["scenes"]}


def test_uploads_expire(env):
    from web import services_of

    app = make_app(env, "expiry", UPLOAD_TTL_HOURS=1)
    client = app.test_client()
    scene_id = upload(client, seed=31).get_json()["scene_id"]
    store = services_of(app).scenes.store
    assert client.get(f"/scene/{scene_id}").status_code == 200
    store._meta[scene_id].created = time.time() - 2 * 3600  # stored two hours ago
    assert client.get(f"/scene/{scene_id}").status_code == 404
    assert client.get(f"/img/scene/{scene_id}").status_code == 404
    assert store.purge_expired() == 1
    assert not list(store.folder.glob(f"{scene_id}.*"))


# -- item 9: quotas, limits, no photo kept for a refused request ---------------------------
@pytest.mark.parametrize(
    "fields, status",
    [
        ({"box": "0,0,0,0"}, 400),
        ({"box": "500,500,600,600"}, 400),
        ({"top_k": "0"}, 400),
        ({"adjective": "sparkly"}, 400),
        ({"category": "spaceship"}, 400),
        ({"user": "<me>"}, 400),
    ],
)
def test_a_refused_upload_request_stores_no_photo(env, fields, status):
    app = make_app(env, f"refused-{abs(hash(str(fields)))}")
    from web import services_of

    folder = services_of(app).scenes.store.folder
    json_error(upload(app.test_client(), seed=41, **fields), status)
    assert not list(folder.glob("u-*"))


def test_upload_quota_per_shopper_and_in_total(env):
    app = make_app(env, "quota", UPLOAD_QUOTA_PER_SHOPPER=2, UPLOAD_QUOTA_TOTAL=3)
    a = app.test_client()
    assert upload(a, seed=51).status_code == 200 and upload(a, seed=52).status_code == 200
    assert "photos stored" in json_error(upload(a, seed=53), 429)
    assert upload(a, seed=51).status_code == 200  # one it already has is no new photo
    b = client_at(app, "10.0.0.2")
    assert upload(b, seed=54).status_code == 200
    assert "as many uploaded photos" in json_error(upload(b, seed=55), 429)


def test_large_photos_are_stored_reduced_and_boxes_follow(env):
    from PIL import Image

    from web import services_of

    app = make_app(env, "reduced", UPLOAD_MAX_SIDE=100, MAX_IMAGE_PIXELS=2_000_000)
    buffer = io.BytesIO()
    Image.new("RGB", (400, 200), (120, 130, 140)).save(buffer, "JPEG")
    data = {"image": (io.BytesIO(buffer.getvalue()), "big.jpg"), "box": "200,0,400,200"}
    response = app.test_client().post("/api/look", data=data, content_type="multipart/form-data")
    body = response.get_json()
    assert response.status_code == 200 and (body["width"], body["height"]) == (100, 50)
    assert body["objects"][0]["box"] == [50, 0, 100, 50]  # the box, in stored pixels
    stored = services_of(app).scenes.store.path(body["scene_id"])
    assert Image.open(stored).size == (100, 50)


def test_concurrent_decodes_are_bounded(env, monkeypatch):
    import threading

    import web.uploads

    app = make_app(env, "slots", DECODE_SLOTS=1)
    active, peak, lock = [0], [0], threading.Lock()
    real = web.uploads.load_image

    def counting(*a, **k):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            return real(*a, **k)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(web.uploads, "load_image", counting)
    clients = [client_at(app, f"10.1.0.{i}") for i in range(4)]
    threads = [threading.Thread(target=upload, args=(c, 60 + i)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1


def test_rate_limits_per_client(env):
    app = make_app(
        env,
        "limits",
        RATELIMIT_ENABLED=True,
        RATE_LIMIT_LOOK="3 per minute",
        RATE_LIMIT_UPLOAD="1 per minute",
        RATE_LIMIT_EVENTS="2 per minute",
    )
    a = app.test_client()
    codes = [a.post("/api/look", json={"scene_id": "room-a"}).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    error = json_error(a.post("/api/look", json={"scene_id": "room-a"}), 429)
    assert "too many requests" in error
    b = client_at(app, "10.0.0.9")  # another client
    assert b.post("/api/look", json={"scene_id": "room-a"}).status_code == 200
    assert upload(b, seed=71).status_code == 200
    json_error(upload(b, seed=72), 429)  # the upload limit, shared by the page and the API
    assert [a.post("/api/events", json=CLICK).status_code for _ in range(3)][-1] == 429


# -- item 10: event integrity, private histories, no server paths -------------------------
@pytest.mark.parametrize(
    "extra, needle",
    [
        ({"category": "spaceship"}, "category"),
        ({"category": "x" * 100_000}, "category"),
        ({"category": ["chair"]}, "category"),
        ({"position": 1.7}, "position"),
        ({"position": True}, "position"),
        ({"position": "3"}, "position"),
        ({"price": True}, "price"),
    ],
)
def test_event_fields_are_refused_not_coerced(app, client, extra, needle):
    from web import services_of

    services = services_of(app)
    services.events.flush()
    before = services.events.count()
    assert needle in json_error(client.post("/api/events", json={**CLICK, **extra}), 400)
    services.events.flush()
    assert services.events.count() == before


def test_a_known_category_is_accepted(client):
    response = client.post("/api/events", json={**CLICK, "category": "chair", "request_id": "cat"})
    assert response.status_code == 201


def test_duplicates_are_reported(client):
    event = {**CLICK, "ts": "2024-05-01T12:00:00Z", "request_id": "dup-1"}
    response = client.post("/api/events", json={"events": [event] * 1000})
    assert response.status_code == 201
    assert response.get_json() == {"logged": 1, "duplicates": 999}
    again = client.post("/api/events", json=event)
    assert again.get_json() == {"logged": 0, "duplicates": 1}


def test_history_is_for_its_shopper_or_the_admin(env):
    app = make_app(env, "history", ADMIN_TOKEN="s3cret-admin-token")
    client = app.test_client()
    assert client.post("/api/events", json={**CLICK, "user_id": "ann"}).status_code == 201
    assert "theirs" in json_error(client.get("/api/users/ann"), 403)
    client.set_cookie("stl_user", "bob")
    json_error(client.get("/api/users/ann"), 403)
    json_error(client.get("/api/users/ann", headers={"Authorization": "Bearer wrong"}), 403)
    admin = client.get("/api/users/ann", headers={"Authorization": "Bearer s3cret-admin-token"})
    assert admin.status_code == 200 and admin.get_json()["events"]["click"] == 1
    client.set_cookie("stl_user", "ann")
    assert client.get("/api/users/ann").get_json()["events"]["click"] == 1


class FailingStore:
    """An events store whose writes fail (a full disk, a broken server database)."""

    broken = True

    def __init__(self, url):
        self.url = url

    def log_groups(self, groups):
        from ranker.events import EventError

        if self.broken:
            raise EventError(f"events database {self.url}: disk I/O error")
        return [len(g) for g in groups]

    def count(self, **filters):
        return 0

    def close(self):
        pass


def test_503_hides_the_database_path_and_healthz_is_degraded_while_writes_fail(env, tmp_path):
    """Items 10 and 13."""
    from web import services_of
    from web.event_sink import EventSink

    app = make_app(env, "failing")
    services = services_of(app)
    secret = str(tmp_path / "very" / "private" / "events.sqlite")
    services.events.close()
    services.events = EventSink(secret, store_factory=FailingStore)
    client = app.test_client()
    assert client.get("/healthz").status_code == 200  # nothing has failed yet
    error = json_error(client.post("/api/events", json=CLICK), 503)
    assert "retry" in error and "private" not in error and str(tmp_path) not in error
    health = client.get("/healthz")
    body = health.get_json()
    assert health.status_code == 503 and body["status"] == "degraded"
    assert body["events"]["failed"] == 1 and "private" not in str(body)
    # page impressions that fail keep it degraded; a write that succeeds makes it ok again
    client.get("/scene/room-a")
    services.events.flush()
    assert client.get("/healthz").status_code == 503
    FailingStore.broken = False
    try:
        client.get("/scene/room-b")
        services.events.flush()
        assert client.get("/healthz").get_json()["status"] == "ok"
    finally:
        FailingStore.broken = True
    services.events.close()


def test_no_server_path_in_any_error(env, tmp_path):
    """A catalog or upload error message names no folder of the server."""
    from web import services_of

    app = make_app(env, "paths")
    services = services_of(app)
    client = app.test_client()
    scene_id = upload(client, seed=81).get_json()["scene_id"]
    path = services.scenes.store.path(scene_id)
    path.write_bytes(b"broken now")
    services.cache._items.clear()
    response = client.post("/api/look", json={"scene_id": scene_id})
    text = response.get_data(as_text=True)
    assert response.status_code == 400 and os.sep + "uploads" not in text
    assert app.instance_path not in text and str(services.image_root) not in text
    assert "path" not in client.get("/healthz").get_json()["catalog"]
