"""The HTML pages with the Flask test client: gallery, scene, product, user switch, bad input."""

from __future__ import annotations

import io
import re

import pytest

from tests.test_web_helpers import (
    HOSTILE_NAME,
    build_catalog,
    build_pipeline,
    csrf_token,
    png_bytes,
    web_config,
    write_scenes,
)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from web import create_app, services_of

    root = tmp_path_factory.mktemp("pages")
    catalog = build_catalog(root)
    scenes = write_scenes(root / "scenes", catalog)
    app = create_app(web_config(root, build_pipeline(catalog), scenes))
    yield app
    services_of(app).close()


@pytest.fixture
def services(app):
    from web import services_of

    return services_of(app)


def user_client(app, user_id: str):
    client = app.test_client()
    client.set_cookie("stl_user", user_id)
    return client


def assert_friendly(response, status):
    text = response.get_data(as_text=True)
    assert response.status_code == status, text[:300]
    assert response.mimetype == "text/html"
    assert "Traceback" not in text and 'class="error-message"' in text
    return text


def test_home_shows_the_gallery_and_upload_form_and_gives_a_guest_id(app):
    client = app.test_client()
    response = client.get("/")
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'href="/scene/room-a"' in text and 'href="/scene/room-b"' in text
    assert 'enctype="multipart/form-data"' in text and 'name="image"' in text
    cookie = response.headers.get("Set-Cookie", "")
    assert re.search(r"stl_user=guest-[0-9a-f]{8}", cookie)


def test_scene_page_dots_products_and_impressions(app, services):
    client = user_client(app, "pat")
    response = client.get("/scene/room-a")
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert text.count('class="dot') == 2 and 'class="dot selected"' in text
    cards = re.findall(r'<li class="product-card" data-product-id="([^"]+)"', text)
    assert cards[0] == "P000" and len(cards) == 4
    # a shop's card: a price, no raw scores or ranking jargon
    assert "10.00" in text and "score 0." not in text and "ranked for" not in text
    assert "Shop the whole look" in text and text.count('class="look-item"') == 2
    assert 'class="chip' in text  # the adjective chips
    request_id = response.headers["X-Request-Id"]
    assert response.headers["X-Impressions"] == "4"
    services.events.flush()
    assert (
        services.events.count(request_id=f"{request_id}-0", user_id="pat", event_type="impression")
        == 4
    )
    second = client.get("/scene/room-a?obj=1").get_data(as_text=True)
    assert re.findall(r'data-product-id="([^"]+)"', second)[0] == "P001"


def test_product_text_is_escaped(app):
    client = user_client(app, "pat")
    page = client.get("/product/P002").get_data(as_text=True)
    assert HOSTILE_NAME not in page and "<script>window.pwned" not in page
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page
    scene = client.get("/scene/room-b").get_data(as_text=True)
    assert "<script>window.pwned" not in scene


def test_clicking_a_product_logs_the_click_and_shows_the_product(app, services):
    client = user_client(app, "quinn")
    scene = client.get("/scene/room-a").get_data(as_text=True)
    link = re.search(r'class="product-link" href="([^"]+)"', scene).group(1).replace("&amp;", "&")
    assert link.startswith("/click/P000?")
    response = client.get(link)
    assert response.status_code == 303 and "/product/P000" in response.headers["Location"]
    services.events.flush()
    assert (
        services.events.count(
            user_id="quinn", event_type="click", product_id="P000", scene_id="room-a"
        )
        == 1
    )
    page = client.get(response.headers["Location"])
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "Similar products" in text
    similar = re.findall(r'data-product-id="([^"]+)"', text)
    assert similar and "P000" not in similar
    services.events.flush()
    assert services.events.count(user_id="quinn", event_type="impression") == 4 + len(similar)


def test_save_logs_a_save_and_returns_to_the_page(app, services):
    client = user_client(app, "rosa")
    token = csrf_token(client)
    response = client.post(
        "/product/P001/save",
        data={
            "scene": "room-a",
            "pos": "1",
            "rid": "abc-1",
            "next": "/scene/room-a",
            "csrf_token": token,
        },
    )
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/scene/room-a")
    services.events.flush()
    assert (
        services.events.count(
            user_id="rosa", event_type="save", product_id="P001", request_id="abc-1"
        )
        == 1
    )
    again = client.post(
        "/product/P004/save", data={"next": response.headers["Location"], "csrf_token": token}
    )
    assert again.headers["Location"] == "/scene/room-a?saved=P004"
    # an off-site "next" is ignored: no open redirect
    away = client.post("/product/P001/save", data={"next": "//evil.example/", "csrf_token": token})
    assert away.headers["Location"].startswith("/product/P001")


def test_user_switch_sets_the_cookie_and_events_follow_it(app, services):
    client = app.test_client()
    token = csrf_token(client)
    response = client.post(
        "/user", data={"user_id": "alice", "next": "/scene/room-b", "csrf_token": token}
    )
    assert response.status_code == 303 and response.headers["Location"] == "/scene/room-b"
    assert "stl_user=alice" in response.headers["Set-Cookie"]
    page = client.get("/scene/room-b").get_data(as_text=True)
    assert '<option value="alice" selected>' in page
    typed = client.post(
        "/user", data={"user_id": "alice", "user_typed": "bob", "csrf_token": token}
    )
    assert "stl_user=bob" in typed.headers["Set-Cookie"]
    assert_friendly(client.post("/user", data={"user_typed": "<bad>", "csrf_token": token}), 400)
    assert_friendly(client.post("/user", data={"csrf_token": token}), 400)


def test_box_and_adjective_links(app):
    client = user_client(app, "pat")
    boxed = client.get("/scene/room-a?box=15,25,90,100").get_data(as_text=True)
    assert "Your selection" in boxed and boxed.count('class="dot') == 1
    dark = client.get("/scene/room-b?adj=dark")
    assert dark.status_code == 200 and 'class="chip active"' in dark.get_data(as_text=True)


def test_upload_form_stores_the_photo_and_opens_its_scene(app):
    client = user_client(app, "pat")
    response = client.post(
        "/upload",
        data={"image": (io.BytesIO(png_bytes(seed=11)), "r.png"), "csrf_token": csrf_token(client)},
        content_type="multipart/form-data",
    )
    assert response.status_code == 303
    location = response.headers["Location"]
    assert re.match(r"^/scene/u-[0-9a-f]{16}$", location)
    assert client.get(location).status_code == 200
    assert location in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize(
    "content, status",
    [
        (b"GIF89a but not really", 400),
        (b"", 400),
        (png_bytes((1100, 1000), seed=5), 413),
    ],
)
def test_bad_uploads_get_a_friendly_page(app, content, status):
    client = user_client(app, "pat")
    response = client.post(
        "/upload",
        data={"image": (io.BytesIO(content), "x.png"), "csrf_token": csrf_token(client)},
        content_type="multipart/form-data",
    )
    text = assert_friendly(response, status)
    assert "form is out of date" not in text  # refused for the photo, not for the token


def test_upload_without_a_file_or_over_the_byte_limit(app):
    import os

    client = user_client(app, "pat")
    token = csrf_token(client)
    no_file = assert_friendly(
        client.post("/upload", data={"csrf_token": token}, content_type="multipart/form-data"), 400
    )
    assert "choose a photo" in no_file
    big = {"image": (io.BytesIO(os.urandom(500_000)), "big.jpg"), "csrf_token": token}
    assert_friendly(client.post("/upload", data=big, content_type="multipart/form-data"), 413)


@pytest.mark.parametrize(
    "url, status",
    [
        ("/scene/no-such-room", 404),
        ("/scene/room-a?obj=7", 400),
        ("/scene/room-a?obj=x", 400),
        ("/scene/room-a?box=900,900,950,950", 400),
        ("/scene/room-a?box=1,2", 400),
        ("/scene/room-a?adj=sparkly", 400),
        ("/product/P999", 404),
        ("/click/P999", 404),
        ("/click/P000?scene=nowhere", 404),
        ("/click/P000?pos=-1", 400),
        ("/click/P000?rid=%3Cx%3E", 400),
        ("/nothing/here", 404),
    ],
)
def test_bad_page_urls_get_a_friendly_page(app, url, status):
    assert_friendly(user_client(app, "pat").get(url), status)


def test_bad_cookie_is_replaced_by_a_guest_id(app):
    client = user_client(app, "<script>")
    response = client.get("/")
    assert response.status_code == 200
    assert re.search(r"stl_user=guest-[0-9a-f]{8}", response.headers["Set-Cookie"])
