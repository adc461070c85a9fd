"""The engagement events store: impressions, clicks, saves and purchases with their context.

SQLite (WAL journal, busy timeout, retried writes) is the embedded default and is safe with
several writer threads and processes. Any other database URL goes through SQLAlchemy (an
optional dependency: ``pip install sqlalchemy`` plus the database's driver).

Duplicates are recognised by a key over (type, user, product, timestamp, request id): a retried
request is stored once, while two real purchases of one article carry different request ids.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from shopthelook.errors import ShopTheLookError

log = logging.getLogger(__name__)

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


def _parse_ts(value: Any) -> datetime:
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


def _is_missing(value: Any) -> bool:
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
        if data[key] is not None and not isinstance(data[key], str) and _is_missing(data[key]):
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
    ts = _parse_ts(data["ts"])
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


def _sqlite_path(url: str | Path) -> Path | None:
    text = str(url)
    if text.startswith("sqlite:///"):
        return Path(text[len("sqlite:///") :])
    if "://" in text:
        return None
    return Path(text)


class EventStore:
    """Append-only engagement log. One instance may be shared by threads and used after fork."""

    def __init__(self, url: str | Path) -> None:
        self.url = str(url)
        #: invalid events skipped by the last log_many call
        self.last_skipped = 0
        path = _sqlite_path(url)
        if path is not None:
            self._backend: _Backend = _SQLite(path)
        else:
            from ranker.events_server import ServerBackend

            self._backend = ServerBackend(self.url)

    def log(self, event: Event | Mapping[str, Any]) -> None:
        """Store one event; raises EventError when it is invalid (a duplicate is not an error)."""
        self._backend.insert([validate_event(event)])

    def log_many(self, events: Iterable[Event | Mapping[str, Any]], chunk: int = 5000) -> int:
        """Store the valid events, skipping (and logging) invalid ones; returns how many were new."""
        stored = bad = 0
        batch: list[dict[str, Any]] = []
        for i, event in enumerate(events):
            try:
                batch.append(validate_event(event))
            except EventError as exc:
                bad += 1
                if bad <= 5:
                    log.warning("event %d skipped: %s", i, exc)
            if len(batch) >= chunk:
                stored += self._backend.insert(batch)
                batch = []
        if batch:
            stored += self._backend.insert(batch)
        if bad:
            log.warning("%d invalid events skipped", bad)
        self.last_skipped = bad
        return stored

    def count(self, **filters: Any) -> int:
        unknown = sorted(set(filters) - set(FILTERABLE))
        if unknown:
            raise EventError(f"cannot filter events by {unknown}; filter by {list(FILTERABLE)}")
        return self._backend.count(filters)

    def to_frame(self, since: Any = None, until: Any = None) -> pd.DataFrame:
        """Events with since <= ts < until, oldest first; ts is a UTC pandas timestamp."""
        lo = _parse_ts(since).timestamp() if since is not None else None
        hi = _parse_ts(until).timestamp() if until is not None else None
        frame = self._backend.select(lo, hi)
        frame["ts"] = pd.to_datetime(frame["ts"].astype(float), unit="s", utc=True)
        frame["position"] = frame["position"].astype("Int64")
        frame["price"] = frame["price"].astype(float)
        return frame.reset_index(drop=True)

    def export_parquet(self, path: str | Path) -> int:
        frame = self.to_frame()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(out, index=False)
        return len(frame)

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Backend:
    def insert(self, rows: list[dict[str, Any]]) -> int:
        raise NotImplementedError

    def count(self, filters: dict[str, Any]) -> int:
        raise NotImplementedError

    def select(self, lo: float | None, hi: float | None) -> pd.DataFrame:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type TEXT NOT NULL,
    user_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    ts REAL NOT NULL,
    scene_id TEXT,
    category TEXT,
    position INTEGER,
    price REAL,
    request_id TEXT,
    dedupe_key TEXT NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
CREATE INDEX IF NOT EXISTS events_user ON events (user_id, ts);
"""
_INSERT_COLUMNS = (*COLUMNS, "dedupe_key")


class _SQLite(_Backend):
    RETRIES = 20

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.is_dir():
            raise EventError(f"events database {path} is a folder; give a file path")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EventError(f"events database {path}: cannot create its folder ({exc})") from None
        self._local = threading.local()
        self._retry(lambda c: c.executescript(_SCHEMA))

    def _conn(self) -> sqlite3.Connection:
        # one connection per thread and per process: sqlite connections must not cross a fork
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            try:
                conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
                conn.execute("PRAGMA busy_timeout = 30000")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.DatabaseError as exc:
                raise EventError(f"events database {self.path}: cannot be opened ({exc})") from None
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _retry(self, work):
        # busy_timeout covers most contention; WAL checkpoints and schema creation by another
        # process can still raise "locked" at once, so retry with jittered backoff
        for attempt in range(self.RETRIES):
            conn = self._conn()
            try:
                return work(conn)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise EventError(f"events database {self.path}: {exc}") from None
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                time.sleep(min(1.0, 0.01 * 2**attempt) * (0.5 + random.random()))
            except sqlite3.DatabaseError as exc:
                raise EventError(f"events database {self.path}: {exc}") from None
        raise EventError(f"events database {self.path}: still locked after {self.RETRIES} tries")

    def insert(self, rows: list[dict[str, Any]]) -> int:
        sql = (
            f"INSERT OR IGNORE INTO events ({', '.join(_INSERT_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _INSERT_COLUMNS)})"
        )
        values = [tuple(r[c] for c in _INSERT_COLUMNS) for r in rows]

        def work(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            before = conn.total_changes
            conn.executemany(sql, values)
            conn.execute("COMMIT")
            return conn.total_changes - before

        return self._retry(work)

    def count(self, filters: dict[str, Any]) -> int:
        where = " AND ".join(f"{k} = ?" for k in filters) or "1"
        sql = f"SELECT COUNT(*) FROM events WHERE {where}"
        return int(self._retry(lambda c: c.execute(sql, tuple(filters.values())).fetchone()[0]))

    def select(self, lo: float | None, hi: float | None) -> pd.DataFrame:
        clauses, params = [], []
        if lo is not None:
            clauses.append("ts >= ?")
            params.append(lo)
        if hi is not None:
            clauses.append("ts < ?")
            params.append(hi)
        where = " AND ".join(clauses) or "1"
        sql = f"SELECT {', '.join(COLUMNS)} FROM events WHERE {where} ORDER BY ts, id"
        rows = self._retry(lambda c: c.execute(sql, params).fetchall())
        return pd.DataFrame(rows, columns=list(COLUMNS))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local = threading.local()


def events_before(events: pd.DataFrame, as_of=None) -> tuple[pd.DataFrame, pd.Timestamp | None]:
    """The events strictly before ``as_of`` (UTC; naive times are taken as UTC), and the
    cut-off used: the latest event's time when ``as_of`` is None."""
    if as_of is not None:
        as_of = pd.Timestamp(as_of)
        as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of
        return events[events["ts"] < as_of], as_of
    return events, (events["ts"].max() if len(events) else None)
