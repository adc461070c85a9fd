"""Every failure becomes a 4xx JSON error (API) or a friendly page (HTML); never a traceback.

Input problems are ShopTheLookErrors raised by the spine (unreadable image, bad box) or
HTTP errors raised here (unknown id, wrong content type); anything else is a bug: it is
logged with its traceback on the server and answered with a plain 500.
"""

from __future__ import annotations

import logging
import re

from flask import Flask, current_app, jsonify, render_template, request
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from shopthelook.core.errors import BoxError, ImageError, QuotaError, ShopTheLookError
from web.scenes import UnknownScene

#: where ``init_app`` lists the server's folders that no message may show
PRIVATE_PATHS = "shopthelook.private_paths"

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An input error with its HTTP status, raised by the views."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def wants_json() -> bool:
    return request.path.startswith(("/api/", "/healthz", "/openapi"))


def redact(message: str) -> str:
    """The message without the server's folders (instance, catalog, images, data root)."""
    for root in current_app.extensions.get(PRIVATE_PATHS, ()):
        message = message.replace(root, "…")
    return message


#: advice meant for whoever runs the server, not for the person sending the photo
_OPERATOR_HINT = re.compile(r"\s*\(raise max_image_pixels[^)]*\)")


def for_shoppers(message: str) -> str:
    """The message without advice only the server's operator can follow."""
    return _OPERATOR_HINT.sub("; send a smaller photo", message)


def error_response(status: int, message: str, title: str | None = None):
    message = for_shoppers(redact(message))
    if status >= 500 and not wants_json():
        message = "Sorry, something went wrong on our side. Please try again in a moment."
    if wants_json():
        response = jsonify({"error": message, "status": status})
        response.status_code = status
        return response
    html = render_template(
        "error.html",
        status=status,
        message=message,
        title=title or _TITLES.get(status, "Something went wrong"),
    )
    return html, status


_TITLES = {
    400: "That did not work",
    404: "Not found",
    405: "Not allowed",
    403: "Not yours",
    413: "Too large",
    415: "Unsupported content",
    429: "Slow down",
}


def status_for(exc: ShopTheLookError) -> int:
    if isinstance(exc, QuotaError):
        return 429
    if isinstance(exc, ImageError) and "over the limit" in str(exc):
        return 413
    if isinstance(exc, (ImageError, BoxError)):
        return 400
    return 400


def init_errors(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.message)

    @app.errorhandler(UnknownScene)
    def _unknown_scene(exc: UnknownScene):
        if not wants_json():  # a shopper followed an old or mistyped link
            return error_response(
                404,
                "We could not find that room or photo: the link may be mistyped, or an "
                "uploaded photo has expired.",
                "Room not found",
            )
        return error_response(404, f"scene {exc.args[0]!r} does not exist", "Scene not found")

    @app.errorhandler(ShopTheLookError)
    def _domain_error(exc: ShopTheLookError):
        return error_response(status_for(exc), str(exc))

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge):
        limit = app.config["MAX_UPLOAD_BYTES"]
        return error_response(413, f"upload is larger than the limit of {limit:,} bytes")

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):
        return error_response(
            400,
            f"this form is out of date or came from another site ({exc.description}); "
            "reload the page and try again",
        )

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(exc: RateLimitExceeded):
        response = error_response(
            429, f"too many requests from your address ({exc.description}); wait and retry"
        )
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return error_response(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _bug(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal error; it has been logged", "Something broke")
