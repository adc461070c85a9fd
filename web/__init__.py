"""The shop-the-look site and JSON API (Flask). The only package that knows Flask.

``create_app(config)`` builds the app; the pipeline, catalog, scene library and events writer
are built once per process (``init_app``) and shared by every request thread.
"""

from __future__ import annotations

import atexit
import logging
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, g, request

from web.api import bp as api_bp
from web.errors import init_errors
from web.pages import bp as pages_bp
from web.services import ANONYMOUS, EXTENSION, USER_COOKIE, services_of, valid_user_id
from web.wiring import build_services

__all__ = ["create_app", "init_app", "services_of"]

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    #: catalog folder (ignored when PIPELINE is given)
    "CATALOG": None,
    #: an already-built shopthelook.pipeline.ShopTheLook (tests inject one)
    "PIPELINE": None,
    #: events database: a file path or sqlite:///path (default: <instance>/events.sqlite)
    "EVENTS": None,
    #: data root holding ikea/ (default: the settings' data_root)
    "DATA_ROOT": None,
    #: gallery scenes: a dataset name, a scenes CSV, a folder of images, or None for none
    "SCENES": "ikea",
    #: trained ranker folder (None: visual order)
    "RANKER": None,
    #: style-direction folder for the adjective chips (None: no chips)
    "DIRECTIONS": None,
    #: adjective chips to offer (default: every direction loaded)
    "ADJECTIVES": None,
    "SETTINGS_FILE": None,
    "MAX_UPLOAD_BYTES": 8 * 1024 * 1024,
    "MAX_IMAGE_PIXELS": 40_000_000,
    "TOP_K": 10,
    "TOP_K_MAX": 50,
    "LOOK_CACHE_SIZE": 256,
    #: users offered by the switcher besides the current one
    "DEMO_USERS": ("alice", "bob"),
    #: where uploaded scenes are kept (default: <instance>/uploads)
    "UPLOAD_FOLDER": None,
    "INSTANCE_PATH": None,
}


def create_app(config: dict[str, Any] | None = None) -> Flask:
    config = dict(config or {})
    instance_path = config.get("INSTANCE_PATH")
    app = Flask(
        __name__, instance_path=str(Path(instance_path).resolve()) if instance_path else None
    )
    app.config.from_mapping(DEFAULTS)
    app.config.from_mapping(config)
    # the form fields around a file need a little room above the file's own limit
    app.config["MAX_CONTENT_LENGTH"] = int(app.config["MAX_UPLOAD_BYTES"]) + 64 * 1024
    app.json.sort_keys = False
    init_app(app)
    return app


def init_app(app: Flask) -> None:
    services = build_services(app.config, app.instance_path)
    app.extensions[EXTENSION] = services
    atexit.register(services.close)
    app.register_blueprint(pages_bp)
    app.register_blueprint(api_bp)
    init_errors(app)

    @app.before_request
    def _identify_user() -> None:
        cookie = request.cookies.get(USER_COOKIE)
        if valid_user_id(cookie):
            g.user_id, g.new_user = cookie, False
        else:
            g.user_id, g.new_user = f"guest-{secrets.token_hex(4)}", True

    @app.after_request
    def _remember_user(response):
        if getattr(g, "new_user", False) and not request.path.startswith(("/api/", "/healthz")):
            response.set_cookie(
                USER_COOKIE, g.user_id, max_age=365 * 24 * 3600, samesite="Lax", httponly=True
            )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    @app.context_processor
    def _globals() -> dict[str, Any]:
        users = [u for u in app.config["DEMO_USERS"] if u != g.get("user_id")]
        return {"current_user": g.get("user_id", ANONYMOUS), "other_users": users}
