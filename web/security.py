"""Protecting the site: a CSRF token on every form, per-client rate limits, same-site redirects,
the secret key that signs the session, and who may read a shopper's history.

Why the JSON API (``/api/...``) needs no CSRF token: nothing it changes depends on a cookie.
``POST /api/events`` takes the user from its body and only accepts ``application/json``, which
a page on another site cannot send without a CORS preflight that this site never approves;
``POST /api/look`` ranks for the ``user`` field, not the cookie, and a photo uploaded through it
belongs to no browser session (it is listed nowhere, only its id opens it). A cross-site form
can therefore do nothing through the API that its author could not do with curl. The pages'
forms (``/user``, save, upload) act for the cookie's shopper and carry a token (Flask-WTF's
CSRFProtect); a request without it is refused with 400.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from flask import Blueprint, Flask, current_app, g, request, session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

log = logging.getLogger(__name__)

#: characters a browser drops from a URL (so "/\t/evil" would become "//evil")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
#: the session key of this browser's private id (the owner of its uploads)
VISITOR = "visitor"
MAX_NEXT_LENGTH = 2000


def safe_next(target: object, fallback: str) -> str:
    """``target`` when it is a path on this site, else ``fallback``: never an open redirect."""
    if not isinstance(target, str) or len(target) > MAX_NEXT_LENGTH:
        return fallback
    text = _CONTROL.sub("", target)
    if not text.startswith("/") or text.startswith("//") or "\\" in text:
        return fallback
    parts = urlsplit(text)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return fallback
    return urlunsplit(("", "", parts.path, parts.query, ""))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def visitor_owner(*, create: bool) -> str | None:
    """The owner key of this browser's uploads (from its signed session), or None."""
    token = session.get(VISITOR)
    if not isinstance(token, str) or not token:
        if not create:
            return None
        token = secrets.token_urlsafe(18)
        session[VISITOR] = token
        session.permanent = True
    return "v:" + _digest(token)


def client_owner() -> str:
    """The owner key of an API client's uploads: counted against its quota, never listed."""
    return "a:" + _digest(get_remote_address() or "unknown")


def may_read_history(user_id: str) -> bool:
    """A shopper's own history (the ``stl_user`` cookie), or any with the admin token."""
    token = current_app.config.get("ADMIN_TOKEN")
    given = request.headers.get("Authorization", "")
    if token and given.startswith("Bearer "):
        if hmac.compare_digest(given[len("Bearer ") :].encode(), str(token).encode()):
            return True
    return not g.get("new_user", True) and g.get("user_id") == user_id


def ensure_secret_key(app: Flask) -> None:
    """SECRET_KEY from the config, else one kept in the instance folder (made once, 0600)."""
    if app.config.get("SECRET_KEY"):
        return
    path = Path(app.instance_path) / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    # written whole under a private name, then linked into place: several server processes
    # (serve --workers) starting at once all read the one key that won, never half of it
    key = secrets.token_hex(32)
    tmp = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    try:
        os.link(tmp, path)
    except FileExistsError:
        key = path.read_text().strip()
    finally:
        tmp.unlink(missing_ok=True)
    if len(key) < 32:
        raise RuntimeError(f"{path} holds no usable secret key; delete it to make a new one")
    app.config["SECRET_KEY"] = key


def _has_image() -> bool:
    return "image" in request.files


def init_security(app: Flask, csrf_exempt: Iterable[Blueprint]) -> Limiter:
    """CSRF protection for the forms and rate limits per client address (see the config)."""
    ensure_secret_key(app)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # valid as long as the session
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    csrf = CSRFProtect(app)
    for blueprint in csrf_exempt:
        csrf.exempt(blueprint)
    limiter = Limiter(get_remote_address, app=app)
    app.extensions["shopthelook.limiter"] = limiter  # Flask-Limiter keeps only weak references
    cfg = app.config
    views = app.view_functions  # a limit applies through the view it wraps
    limiter.exempt(views["static"])
    for endpoint in ("pages.scene", "api.look"):
        views[endpoint] = limiter.limit(lambda: cfg["RATE_LIMIT_LOOK"])(views[endpoint])
    for endpoint in ("pages.upload", "api.look"):
        views[endpoint] = limiter.shared_limit(
            lambda: cfg["RATE_LIMIT_UPLOAD"], scope="upload", exempt_when=lambda: not _has_image()
        )(views[endpoint])
    events = "api_events.events"
    views[events] = limiter.limit(lambda: cfg["RATE_LIMIT_EVENTS"])(views[events])
    return limiter
