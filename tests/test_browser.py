"""A real browser (headless Debian Chromium driven by Playwright) uses the site as a person would.

The app is served by waitress on 127.0.0.1 in a thread; every request the browser makes to
another host is blocked and fails the test. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.test_web_helpers import (
    build_catalog,
    build_pipeline,
    ikea_catalog,
    web_config,
    write_scenes,
)

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def _need_browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(
            "playwright is not installed (pip install playwright; never 'playwright "
            "install': the test drives the system's Chromium)"
        )
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set $CHROMIUM)")
    return sync_playwright


class LocalServer:
    """waitress serving ``app`` on a free port of 127.0.0.1, in a thread."""

    def __init__(self, app) -> None:
        import waitress

        self.server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.close()
        self.thread.join(5)


@pytest.fixture
def browser_page(tmp_path):
    """A fresh Chromium profile whose only reachable host is 127.0.0.1."""
    sync_playwright = _need_browser()
    blocked: list[str] = []

    def guard(route):
        host = urlparse(route.request.url).hostname
        if host == "127.0.0.1" or route.request.url.startswith(("data:", "about:")):
            return route.continue_()
        blocked.append(route.request.url)
        return route.abort()

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 860},
        )
        context.route("**/*", guard)
        page = context.pages[0] if context.pages else context.new_page()
        # a cache-miss scene runs the whole pipeline; on a loaded 2-core CI machine the first
        # one has taken longer than Playwright's 30 s default
        page.set_default_navigation_timeout(120_000)
        page.set_default_timeout(60_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            yield page
        finally:
            context.close()
    assert not blocked, f"the page tried to reach other hosts: {blocked[:5]}"
    assert not errors, f"JavaScript errors: {errors[:5]}"


@pytest.fixture
def site(tmp_path):
    from web import create_app, services_of

    catalog = build_catalog(tmp_path)
    scenes = write_scenes(tmp_path / "scenes", catalog)
    app = create_app(web_config(tmp_path, build_pipeline(catalog), scenes))
    with LocalServer(app) as server:
        yield server, services_of(app)
    services_of(app).close()


def _open_scene_and_click_a_product(page, base_url, scene_id, services, shot: str):
    page.goto(base_url + "/")
    tiles = page.locator(f'a.scene-tile[data-scene-id="{scene_id}"]')
    assert tiles.count() == 1
    tiles.click()
    page.wait_for_url(f"**/scene/{scene_id}")
    dots = page.locator("a.dot")
    assert dots.count() >= 1
    with page.expect_navigation():  # the last dot: not the default selection when >1
        dots.nth(dots.count() - 1).click()
    cards = page.locator("li.product-card")
    assert cards.count() >= 1
    first_id = cards.first.get_attribute("data-product-id")
    for img in page.locator(".results img").all() + [page.locator(".photo-frame img")]:
        img.scroll_into_view_if_needed()
        assert img.evaluate("i => i.complete && i.naturalWidth > 0"), "an image did not load"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    user_id = next(c["value"] for c in page.context.cookies() if c["name"] == "stl_user")
    cards.first.locator("a.product-link").click()
    page.wait_for_url(f"**/product/{first_id}*")
    assert page.locator("h1").count() == 1
    services.events.flush()
    assert (
        services.events.count(
            user_id=user_id, event_type="click", product_id=first_id, scene_id=scene_id
        )
        == 1
    )
    assert services.events.count(user_id=user_id, event_type="impression") >= cards.count()
    return user_id, first_id


def test_browse_scene_click_dot_and_product(site, browser_page):
    server, services = site
    page = browser_page
    user_id, product_id = _open_scene_and_click_a_product(
        page, server.url, "room-a", services, "scene.png"
    )
    assert product_id == "P001"  # the sofa dot's best match is the sofa pasted into the room
    assert page.evaluate("window.pwned") is None  # hostile product names stay text

    # save it: the save lands in the store under the same cookie user
    page.locator("button.save").first.click()
    page.wait_for_url("**saved=P001")
    services.events.flush()
    assert services.events.count(user_id=user_id, event_type="save", product_id="P001") == 1

    # drag a box on the photo: the page searches that region
    page.goto(server.url + "/scene/room-b")
    frame = page.locator("#photo").bounding_box()
    page.mouse.move(frame["x"] + frame["width"] * 0.06, frame["y"] + frame["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(frame["x"] + frame["width"] * 0.3, frame["y"] + frame["height"] * 0.7, steps=6)
    page.mouse.up()
    page.wait_for_url("**/scene/room-b?box=*")
    assert "Your selection" in page.locator(".results h2").inner_text()
    assert page.locator("li.product-card").count() >= 1

    # switch user: the switcher's choice becomes the user the page ranks for
    with page.expect_navigation():  # the switcher submits itself; wait for the new page
        page.select_option("#user-select", "bob")
    assert page.locator("#user-select").input_value() == "bob"


@pytest.mark.shared
@pytest.mark.slow
def test_real_ikea_room_with_yolo(tmp_path, ikea_root, yolo_weights, browser_page):
    """A real IKEA room, the real YOLO detector, a catalog of real IKEA products (hvf)."""
    from shopthelook.core.config import load_settings
    from shopthelook.pipeline import ShopTheLook
    from web import create_app, services_of

    catalog, rooms = ikea_catalog(str(ikea_root.parent))
    settings = load_settings(backbone="hvf", detector_weights=str(yolo_weights), threads=2)
    pipeline = ShopTheLook(catalog, settings)
    app = create_app(web_config(tmp_path, pipeline, tmp_path, SCENES=rooms, TOP_K=8))
    try:
        with LocalServer(app) as server:
            _open_scene_and_click_a_product(
                browser_page,
                server.url,
                rooms["scene_id"].iloc[0],
                services_of(app),
                "scene-ikea.png",
            )
    finally:
        services_of(app).close()


PHONE = {"width": 390, "height": 844}


def _overflow(page) -> int:
    """How many CSS pixels the page is wider than the screen (0: no sideways scrolling)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def _touch_drag(cdp, start, end, steps: int = 6) -> None:
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [start]})
    for k in range(1, steps + 1):
        p = {a: start[a] + (end[a] - start[a]) * k / steps for a in ("x", "y")}
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [p]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def test_phone_sized_pages_scroll_with_a_finger_and_select_an_area(site, browser_page, tmp_path):
    """A 390 px phone: no page is wider than the screen, a finger on the photo scrolls the
    page, and "Select an area" lets the finger draw a box instead."""
    server, services = site
    page = browser_page
    page.set_viewport_size(PHONE)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 1})
    ARTIFACTS.mkdir(exist_ok=True)
    for path, shot in (
        ("/", "phone-home.png"),
        ("/scene/room-a", "phone-scene.png"),
        ("/product/P002", "phone-product.png"),
        ("/scene/no-such-room", "phone-error.png"),
    ):
        page.goto(server.url + path)
        assert _overflow(page) <= 0, f"{path} is {_overflow(page)} px wider than a phone"
        page.screenshot(path=str(ARTIFACTS / shot), full_page=True)

    # a finger swiping up over the photo scrolls the page (the photo does not swallow it)
    page.goto(server.url + "/scene/room-a")
    page.evaluate("document.body.style.minHeight = '3000px'")  # room to scroll, whatever the size
    box = page.locator("#photo").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.9
    _touch_drag(cdp, {"x": x, "y": y}, {"x": x, "y": y - 200}, steps=10)
    page.wait_for_function("window.scrollY > 50", timeout=5000)
    assert page.url.endswith("/scene/room-a")  # scrolling drew no box

    # "Select an area", then the same finger draws a box: the page searches that region
    page.evaluate("window.scrollTo(0, 0)")
    page.locator("#select-area").click()
    assert page.locator("#photo.selecting").count() == 1
    box = page.locator("#photo").bounding_box()
    start = {"x": box["x"] + box["width"] * 0.06, "y": box["y"] + box["height"] * 0.2}
    end = {"x": box["x"] + box["width"] * 0.32, "y": box["y"] + box["height"] * 0.75}
    with page.expect_navigation():
        _touch_drag(cdp, start, end)
    assert "box=" in page.url
    assert "Your selection" in page.locator(".results h2").inner_text()
    assert _overflow(page) <= 0


def test_a_tall_thin_upload_is_shown_whole_not_stretched(site, browser_page, tmp_path):
    from PIL import Image

    server, _ = site
    page = browser_page
    thin = tmp_path / "thin.png"
    Image.new("RGB", (30, 2000), (120, 90, 60)).save(thin)
    page.goto(server.url + "/")
    page.set_input_files('input[type="file"][name="image"]', str(thin))
    with page.expect_navigation():
        page.locator('form.upload button[type="submit"]').click()
    photo = page.locator("#photo img").bounding_box()
    height = page.viewport_size["height"]
    assert photo["height"] <= 0.76 * height + 1, photo
    assert abs(photo["width"] / photo["height"] - 30 / 2000) < 0.01  # the photo's own shape
    frame = page.locator("#photo").bounding_box()
    assert abs(frame["width"] - photo["width"]) < 1.5  # the dots' frame is the photo
    page.screenshot(path=str(ARTIFACTS / "tall-thin-upload.png"), full_page=True)
