"""What an engagement event is: its fields, types and the checks every stored event passes."""

from __future__ import annotations

import hashlib
import math
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
#: events stamped further in the future than this are refused (a wrong clock or unit)
MAX_CLOCK_SKEW = timedelta(days=1)


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
    if value is None:
        return datetime.now(UTC)
    if isinstance(value, pd.Timestamp):
        if value is pd.NaT:
            return datetime.now(UTC)
        value = value.to_pydatetime(warn=False)
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise EventError(f"timestamp {value!r} is not a finite number")
        ts = datetime.fromtimestamp(float(value), UTC)
    elif isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise EventError(
                f"timestamp {value!r}: expected ISO 8601, e.g. 2024-05-01T12:00:00Z"
            ) from None
    else:
        raise EventError(f"timestamp {value!r}: expected a datetime, ISO string or epoch seconds")
    # a naive time is taken as UTC: every writer in this project stamps UTC
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def validate_event(raw: Event | Mapping[str, Any]) -> dict[str, Any]:
    """A checked row ready to store (ts as epoch seconds); raises EventError naming the fault."""
    if isinstance(raw, Event):
        data = asdict(raw)
    elif isinstance(raw, Mapping):
        unknown = sorted(set(raw) - set(COLUMNS))
        if unknown:
            raise EventError(f"event has unknown fields {unknown}; known: {list(COLUMNS)}")
        data = {name: raw.get(name) for name in (f.name for f in fields(Event))}
    else:
        raise EventError(f"event must be an Event or a mapping, not {type(raw).__name__}")
    for key in ("ts", "scene_id", "category", "position", "price", "request_id"):
        # rows from a DataFrame mark a missing optional field with NaN / NA / NaT
        if data[key] is not None and not isinstance(data[key], str) and is_missing(data[key]):
            data[key] = None
    kind = data["event_type"]
    if kind not in EVENT_TYPES:
        raise EventError(f"event type {kind!r} is unknown; use one of {list(EVENT_TYPES)}")
    for key in ("user_id", "product_id"):
        value = data[key]
        if (
            value is None
            or (isinstance(value, float) and math.isnan(value))
            or not str(value).strip()
        ):
            raise EventError(f"{kind} event has an empty {key}")
        data[key] = str(value).strip()
    ts = parse_ts(data["ts"])
    if ts > datetime.now(UTC) + MAX_CLOCK_SKEW:
        raise EventError(f"{kind} event at {ts.isoformat()} lies in the future; check the clock")
    data["ts"] = ts.timestamp()
    if data["position"] is not None:
        try:
            position = int(data["position"])
        except (TypeError, ValueError):
            raise EventError(f"position {data['position']!r} is not an integer") from None
        if position < 0:
            raise EventError(f"position {position} is negative")
        data["position"] = position
    if data["price"] is not None:
        try:
            price = float(data["price"])
        except (TypeError, ValueError):
            raise EventError(f"price {data['price']!r} is not a number") from None
        if not math.isfinite(price) or price < 0:
            raise EventError(f"price {price!r} must be a finite number >= 0")
        data["price"] = price
    for key in ("scene_id", "category", "request_id"):
        if data[key] is not None:
            data[key] = str(data[key]) or None
    key_text = "\x1f".join(
        str(data[k]) for k in ("event_type", "user_id", "product_id", "ts", "request_id")
    )
    data["dedupe_key"] = hashlib.sha1(key_text.encode()).hexdigest()
    return data


#: the columns a backend stores (the fields plus the key that makes a repeated event a no-op)
INSERT_COLUMNS = (*COLUMNS, "dedupe_key")
