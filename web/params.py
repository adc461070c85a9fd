"""Reading request parameters into typed values; every bad value is an ApiError (4xx).

JSON bodies are read by ``read_json``: sizes, nesting depth and non-finite numbers
(``NaN``, ``Infinity``, ``1e400``) are refused before any of it is used.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
from flask import request

from shopthelook.core.types import Box
from web.errors import ApiError
from web.services import Services, valid_user_id

LIST_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: largest JSON body (1000 events of a few hundred bytes fit easily) and deepest nesting
MAX_JSON_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 8
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def json_depth(raw: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text (strings skipped)."""
    codes = np.frombuffer(_JSON_STRING.sub(b'""', raw), dtype=np.uint8)
    steps = np.isin(codes, (ord("["), ord("{"))).astype(np.int64)
    steps -= np.isin(codes, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number; send a finite number")


def read_json() -> Any:
    """The request's JSON body, checked for size and depth before it is parsed."""
    raw = request.get_data(cache=True)
    if len(raw) > MAX_JSON_BYTES:
        raise ApiError(413, f"JSON body of {len(raw):,} bytes: send at most {MAX_JSON_BYTES:,}")
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise ApiError(400, f"malformed JSON: nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(raw, parse_float=_finite_float, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        reason = str(exc)[:120] if isinstance(exc, ValueError) else "nested too deeply"
        raise ApiError(400, f"malformed JSON ({reason})") from None


def parse_box(value: Any) -> Box | None:
    """``"x1,y1,x2,y2"`` or a list of four numbers (pixels of the upright image)."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)):
        if len(value) != 4 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            raise ApiError(400, f"box {_show(value)}: expected four numbers [x1, y1, x2, y2]")
        try:
            box = Box(*(float(v) for v in value))
        except OverflowError:  # an integer beyond any float
            raise ApiError(400, "box: coordinates must be finite numbers") from None
    elif isinstance(value, str):
        if len(value) > 200:
            raise ApiError(400, "box: expected 'x1,y1,x2,y2', not a long text")
        box = Box.parse(value)  # BoxError -> 400
    else:
        raise ApiError(400, f"box {_show(value)}: expected 'x1,y1,x2,y2' or [x1, y1, x2, y2]")
    if not all(math.isfinite(v) for v in (box.x1, box.y1, box.x2, box.y2)):
        raise ApiError(400, f"box {_show(value)}: coordinates must be finite numbers")
    return box


def _show(value: Any) -> str:
    """A value as an error message quotes it: short, whatever its size."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_int(value: Any, name: str, *, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ApiError(400, f"{name} {_show(value)}: expected an integer")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ApiError(400, f"{name} {_show(value)}: expected an integer")
    if isinstance(value, str) and not re.fullmatch(r"\s*[-+]?\d{1,18}\s*", value):
        raise ApiError(400, f"{name} {_show(value)}: expected an integer")
    number = int(value)
    if not low <= number <= high:
        raise ApiError(400, f"{name} {number}: must be between {low} and {high}")
    return number


def parse_user(value: Any, default: str) -> str:
    if value is None or value == "":
        return default
    if not isinstance(value, str) or not valid_user_id(value):
        raise ApiError(
            400,
            f"user {_show(value)}: use 1-64 letters, digits, '_', '.', '@' or '-', "
            "starting with a letter or digit",
        )
    return value


def parse_adjective(value: Any, services: Services) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"adjective {_show(value)}: expected a string")
    if value not in services.adjectives:
        known = ", ".join(services.adjectives) or "none (no style directions are loaded)"
        raise ApiError(400, f"adjective {_show(value)} is unknown; known: {known}")
    return value


def parse_category(value: Any, services: Services) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value not in services.catalog.categories():
        raise ApiError(
            400,
            f"category {_show(value)} is not in the catalog; known: "
            f"{', '.join(services.catalog.categories())}",
        )
    return value


def parse_text_id(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ApiError(400, f"{name} {_show(value)}: expected a string")
    text = str(value)
    if len(text) > 200:
        raise ApiError(400, f"{name}: longer than 200 characters")
    return text


def parse_list_id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not LIST_ID.match(value):
        raise ApiError(400, f"request_id {_show(value)}: expected 1-64 letters, digits, '_' or '-'")
    return value


def parse_flag(value: Any, name: str) -> bool:
    """A yes/no field: JSON true/false, or a form's "true"/"false"/"1"/"0" (absent: false)."""
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise ApiError(400, f"{name} must be true or false, not {_show(value)}")
