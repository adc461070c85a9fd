"""What an engagement event is: its fields, types and the checks every stored event passes."""

from __future__ import annotations

import hashlib
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from shopthelook.core.errors import ShopTheLookError

EVENT_TYPES = ("impression", "click", "save", "purchase")
COLUMNS = (
    "event_type",
    "user_id",
    "product_id",
    "ts",
    "scene_id",
    "category",
    "position",
    "price",
    "request_id",
)
FILTERABLE = ("event_type", "user_id", "product_id", "scene_id", "category", "request_id")
#: the window of accepted event times: nothing before this day (a wrong unit or a default date
#: such as 0001-01-01), nothing later than now plus MAX_CLOCK_SKEW (a wrong clock or unit)
TS_MIN = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CLOCK_SKEW = timedelta(days=1)
#: longest ids (user, product, scene, request) and category names the store accepts
MAX_ID_LENGTH = 200
MAX_CATEGORY_LENGTH = 100
#: largest list position and price: anything above is a unit or encoding mistake
MAX_POSITION = 1_000_000
MAX_PRICE = 1e9
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class EventError(ShopTheLookError):
    """An engagement event is malformed, or the events database cannot be used."""


@dataclass
class Event:
    event_type: str
    user_id: str
    product_id: str
    ts: datetime | None = None
    scene_id: str | None = None
    category: str | None = None
    position: int | None = None
    price: float | None = None
    request_id: str | None = None

    def __post_init__(self) -> None:
        if self.ts is None:
            self.ts = datetime.now(UTC)


def parse_ts(value: Any) -> datetime:
    """A UTC datetime from a datetime, an ISO 8601 string or epoch seconds (None: now);
    EventError for anything else, including times no calendar can hold."""
    if value is None:
        return datetime.now(UTC)
    if isinstance(value, pd.Timestamp):
        if value is pd.NaT:
            return datetime.now(UTC)
        value = value.to_pydatetime(warn=False)
    try:
        if isinstance(value, datetime):
            ts = value
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise EventError(f"timestamp {value!r} is not a finite number")
            ts = datetime.fromtimestamp(float(value), UTC)
        elif isinstance(value, str):
            try:
                ts = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                raise EventError(
                    f"timestamp {value[:60]!r}: expected ISO 8601, e.g. 2024-05-01T12:00:00Z"
                ) from None
        else:
            raise EventError(
                f"timestamp {type(value).__name__}: expected a datetime, ISO string or epoch seconds"
            )
        # a naive time is taken as UTC: every writer in this project stamps UTC
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    except (OverflowError, OSError, ValueError):  # beyond year 1..9999 once in UTC
        raise EventError(
            f"timestamp {str(value)[:60]!r} is out of range; give a time after "
            f"{TS_MIN.date()} in ISO 8601 or epoch seconds"
        ) from None


def ts_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The times an event may carry: [TS_MIN, now + MAX_CLOCK_SKEW]."""
    return TS_MIN, (now or datetime.now(UTC)) + MAX_CLOCK_SKEW


def is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _text(value: Any, name: str, kind: str, *, limit: int, ids: bool = True) -> str | None:
    """A stripped text field: a string (or, for ids, an integer); None when empty."""
    if value is None:
        return None
    integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not isinstance(value, str) and not (ids and integer):
        expected = "a string or an integer" if ids else "a string"
        raise EventError(f"{kind} event: {name} must be {expected}, not {type(value).__name__}")
    text = str(value).strip()
    if len(text) > limit:
        raise EventError(f"{kind} event: {name} is {len(text)} characters long; at most {limit}")
    if _CONTROL.search(text):
        raise EventError(f"{kind} event: {name} contains control characters")
    return text or None


def _position(value: Any, kind: str) -> int | None:
    if value is None:
        return None
    number: Any = value
    if isinstance(value, str) and value.strip().lstrip("+").isdigit():
        number = int(value.strip())
    if isinstance(number, bool) or not isinstance(number, numbers.Real):
        raise EventError(f"{kind} event: position {value!r} is not an integer")
    if not math.isfinite(number) or number != int(number):
        raise EventError(f"{kind} event: position {value!r} is not an integer")
    position = int(number)
    if position < 0:
        raise EventError(f"{kind} event: position {position} is negative")
    if position > MAX_POSITION:
        raise EventError(f"{kind} event: position {position} is over the limit of {MAX_POSITION:,}")
    return position


def _price(value: Any, kind: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise EventError(f"{kind} event: price {value!r} is not a number")
    try:
        price = float(value)
    except (TypeError, ValueError, OverflowError):
        raise EventError(f"{kind} event: price {str(value)[:40]!r} is not a number") from None
    if not math.isfinite(price) or not 0 <= price <= MAX_PRICE:
        raise EventError(f"{kind} event: price {price!r} must be a finite number 0..{MAX_PRICE:g}")
    return price


def validate_event(raw: Event | Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """A checked row ready to store (ts as epoch seconds); raises EventError naming the fault.

    Every field is checked for type, size and range here, so nothing a backend cannot hold
    (an integer over 64 bits, a time beyond year 9999, a list) ever reaches SQL.
    """
    if isinstance(raw, Event):
        data = asdict(raw)
    elif isinstance(raw, Mapping):
        unknown = sorted(str(k) for k in set(raw) - set(COLUMNS))
        if unknown:
            raise EventError(f"event has unknown fields {unknown[:10]}; known: {list(COLUMNS)}")
        data = {name: raw.get(name) for name in (f.name for f in fields(Event))}
    else:
        raise EventError(f"event must be an Event or a mapping, not {type(raw).__name__}")
    for key in ("ts", "scene_id", "category", "position", "price", "request_id"):
        # rows from a DataFrame mark a missing optional field with NaN / NA / NaT
        if data[key] is not None and not isinstance(data[key], str) and is_missing(data[key]):
            data[key] = None
    kind = data["event_type"]
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        raise EventError(
            f"event type {str(kind)[:40]!r} is unknown; use one of {list(EVENT_TYPES)}"
        )
    for key in ("user_id", "product_id"):
        value = data[key]
        if value is not None and not isinstance(value, str) and is_missing(value):
            value = None
        data[key] = _text(value, key, kind, limit=MAX_ID_LENGTH)
        if data[key] is None:
            raise EventError(f"{kind} event has an empty {key}")
    for key in ("scene_id", "request_id"):
        data[key] = _text(data[key], key, kind, limit=MAX_ID_LENGTH)
    data["category"] = _text(
        data["category"], "category", kind, limit=MAX_CATEGORY_LENGTH, ids=False
    )
    ts = parse_ts(data["ts"])
    lo, hi = ts_window(now)
    if ts < lo:
        raise EventError(f"{kind} event at {ts.isoformat()} is before {lo.date()}; check its time")
    if ts > hi:
        raise EventError(f"{kind} event at {ts.isoformat()} lies in the future; check the clock")
    data["ts"] = ts.timestamp()
    data["position"] = _position(data["position"], kind)
    data["price"] = _price(data["price"], kind)
    key_text = "\x1f".join(
        str(data[k]) for k in ("event_type", "user_id", "product_id", "ts", "request_id")
    )
    data["dedupe_key"] = hashlib.sha1(key_text.encode()).hexdigest()
    return data


#: the columns a backend stores (the fields plus the key that makes a repeated event a no-op)
INSERT_COLUMNS = (*COLUMNS, "dedupe_key")
