"""Reading request parameters into typed values; every bad value is an ApiError (4xx)."""

from __future__ import annotations

import math
import re
from typing import Any

from shopthelook.core.types import Box
from web.errors import ApiError
from web.services import Services, valid_user_id

LIST_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def parse_box(value: Any) -> Box | None:
    """``"x1,y1,x2,y2"`` or a list of four numbers (pixels of the upright image)."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)):
        if len(value) != 4 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            raise ApiError(400, f"box {value!r}: expected four numbers [x1, y1, x2, y2]")
        box = Box(*(float(v) for v in value))
    elif isinstance(value, str):
        box = Box.parse(value)  # BoxError -> 400
    else:
        raise ApiError(400, f"box {value!r}: expected 'x1,y1,x2,y2' or [x1, y1, x2, y2]")
    if not all(math.isfinite(v) for v in (box.x1, box.y1, box.x2, box.y2)):
        raise ApiError(400, f"box {value!r}: coordinates must be finite numbers")
    return box


def parse_int(value: Any, name: str, *, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ApiError(400, f"{name} {value!r}: expected an integer")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"{name} {value!r}: expected an integer") from None
    if isinstance(value, float) and number != value:
        raise ApiError(400, f"{name} {value!r}: expected an integer")
    if not low <= number <= high:
        raise ApiError(400, f"{name} {number}: must be between {low} and {high}")
    return number


def parse_user(value: Any, default: str) -> str:
    if value is None or value == "":
        return default
    if not isinstance(value, str) or not valid_user_id(value):
        raise ApiError(
            400,
            f"user {value!r}: use 1-64 letters, digits, '_', '.', '@' or '-', "
            "starting with a letter or digit",
        )
    return value


def parse_adjective(value: Any, services: Services) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"adjective {value!r}: expected a string")
    if value not in services.adjectives:
        known = ", ".join(services.adjectives) or "none (no style directions are loaded)"
        raise ApiError(400, f"adjective {value!r} is unknown; known: {known}")
    return value


def parse_category(value: Any, services: Services) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value not in services.catalog.categories():
        raise ApiError(
            400,
            f"category {value!r} is not in the catalog; known: "
            f"{', '.join(services.catalog.categories())}",
        )
    return value


def parse_text_id(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ApiError(400, f"{name} {value!r}: expected a string")
    text = str(value)
    if len(text) > 200:
        raise ApiError(400, f"{name}: longer than 200 characters")
    return text


def parse_list_id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not LIST_ID.match(value):
        raise ApiError(400, f"request_id {value!r}: expected 1-64 letters, digits, '_' or '-'")
    return value
