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
from web.errors import PRIVATE_PATHS, init_errors
from web.events_api import bp as events_bp
from web.pages import bp as pages_bp
from web.security import init_security
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
    #: style-coherence model folder for the whole look (None: each object's best match)
    "COHERENCE": None,
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
    #: uploads: kept this long, at most this many per shopper and in all, reduced to this side
    "UPLOAD_TTL_HOURS": 7 * 24,
    "UPLOAD_QUOTA_PER_SHOPPER": 50,
    "UPLOAD_QUOTA_TOTAL": 5000,
    "UPLOAD_QUOTA_TOTAL_MB": 2048,
    "UPLOAD_MAX_SIDE": 4096,
    #: photos decoded at once (uploads) and pipeline runs at once (looks)
    "DECODE_SLOTS": 2,
    "LOOK_SLOTS": 4,
    #: signs the session (CSRF tokens, upload ownership); default: <instance>/secret_key
    "SECRET_KEY": None,
    #: lets GET /api/users/<id> show any shopper's history (Authorization: Bearer <token>)
    "ADMIN_TOKEN": None,
    #: per-client rate limits (Flask-Limiter syntax; RATELIMIT_* are Flask-Limiter's own)
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_STORAGE_URI": "memory://",
    "RATELIMIT_DEFAULT": "1200 per minute",
    "RATELIMIT_HEADERS_ENABLED": True,
    "RATE_LIMIT_LOOK": "60 per minute",
    "RATE_LIMIT_UPLOAD": "10 per minute;100 per day",
    "RATE_LIMIT_EVENTS": "120 per minute",
    #: reverse proxies in front of the site whose X-Forwarded-* headers are trusted
    "PROXY_HOPS": 0,
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
    hops = int(app.config.get("PROXY_HOPS") or 0)
    if hops > 0:  # behind reverse proxies: the client's address, scheme and host they saw
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    init_app(app)
    return app


def _private_paths(app: Flask, services) -> list[str]:
    """The server's folders, longest first: error messages never show them."""
    roots = {app.instance_path, str(services.image_root), str(services.scenes.upload_dir)}
    catalog_path = getattr(services.catalog, "path", None)
    if catalog_path is not None:
        roots |= {str(catalog_path), str(Path(catalog_path).resolve())}
    data_root = app.config.get("DATA_ROOT") or getattr(
        getattr(services.pipeline, "settings", None), "data_root", None
    )
    if data_root:
        roots |= {str(data_root), str(Path(data_root).resolve())}
    roots.add(str(Path(services.events.url).resolve().parent))
    return sorted((r for r in roots if len(r) > 1), key=len, reverse=True)


def init_app(app: Flask) -> None:
    services = build_services(app.config, app.instance_path)
    app.extensions[EXTENSION] = services
    app.extensions[PRIVATE_PATHS] = _private_paths(app, services)
    atexit.register(services.close)
    app.register_blueprint(pages_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(events_bp)
    init_errors(app)
    # the JSON API acts on no cookie (see web.security), so only the pages' forms need tokens
    init_security(app, csrf_exempt=(api_bp, events_bp))

    @app.before_request
    def _identify_user() -> None:
        cookie = request.cookies.get(USER_COOKIE)
        if valid_user_id(cookie):
            g.user_id, g.new_user = cookie, False
        else:
            g.user_id, g.new_user = f"guest-{secrets.token_hex(4)}", True

    @app.after_request
    def _remember_user(response):
        if getattr(g, "new_user", False) and not request.path.startswith(
            ("/api/", "/healthz", "/openapi")
        ):
            response.set_cookie(
                USER_COOKIE, g.user_id, max_age=365 * 24 * 3600, samesite="Lax", httponly=True
            )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    @app.context_processor
    def _globals() -> dict[str, Any]:
        users = [u for u in app.config["DEMO_USERS"] if u != g.get("user_id")]
        return {"current_user": g.get("user_id", ANONYMOUS), "other_users": users}
