"""The engagement events store: impressions, clicks, saves and purchases with their context.

SQLite (WAL journal, busy timeout, retried writes) is the embedded default and is safe with
several writer threads and processes. Any other database URL goes through SQLAlchemy (an
optional dependency: ``pip install sqlalchemy`` plus the database's driver).

Duplicates are recognised by a key over (type, user, product, timestamp, request id): a retried
request is stored once, while two real purchases of one article carry different request ids.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ranker.event_backends import Backend, SQLiteBackend
from ranker.event_schema import (
    COLUMNS,
    EVENT_TYPES,
    FILTERABLE,
    Event,
    EventError,
    parse_ts,
    ts_window,
    validate_event,
)
from ranker.events_server import ServerBackend

__all__ = [
    "COLUMNS",
    "EVENT_TYPES",
    "Event",
    "EventError",
    "EventStore",
    "events_before",
    "validate_event",
]

log = logging.getLogger(__name__)


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
        #: stored rows the last to_frame call left out: a time outside the accepted window
        #: (written before it was enforced) or not a number
        self.last_out_of_range = 0
        path = _sqlite_path(url)
        if path is not None:
            self._backend: Backend = SQLiteBackend(path)
        else:
            self._backend = ServerBackend(self.url)

    def log(self, event: Event | Mapping[str, Any]) -> int:
        """Store one event; raises EventError when it is invalid (a duplicate is not an error).
        Returns 1 when it was new, 0 for a duplicate."""
        return self._backend.insert([validate_event(event)])

    def log_groups(self, groups: list[list[Event | Mapping[str, Any]]]) -> list[int]:
        """Store several groups in one transaction; how many of each were new. Every event is
        validated first: one invalid event raises EventError and nothing is stored."""
        rows = [[validate_event(e) for e in group] for group in groups]
        return self._backend.insert_groups(rows)

    def check_writable(self) -> None:
        """EventError unless the database would take a write now."""
        self._backend.check_writable()

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
        lo = parse_ts(since).timestamp() if since is not None else None
        hi = parse_ts(until).timestamp() if until is not None else None
        frame = self._backend.select(lo, hi)
        # stores written before the time window was enforced may hold any time: leave those
        # rows out (and count them) rather than fail on a date pandas cannot represent
        seconds = pd.to_numeric(frame["ts"], errors="coerce")
        first, last = (t.timestamp() for t in ts_window())
        usable = seconds.between(first, last)
        self.last_out_of_range = int((~usable).sum())
        if self.last_out_of_range:
            log.warning(
                "%d stored event(s) with a time outside %s .. now+1 day left out",
                self.last_out_of_range,
                ts_window()[0].date(),
            )
            frame, seconds = frame[usable].copy(), seconds[usable]
        frame["ts"] = pd.to_datetime(seconds.astype(float), unit="s", utc=True)
        position = pd.to_numeric(frame["position"], errors="coerce")
        frame["position"] = position.where(position == position.round()).astype("Int64")
        frame["price"] = pd.to_numeric(frame["price"], errors="coerce").astype(float)
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


def events_before(events: pd.DataFrame, as_of=None) -> tuple[pd.DataFrame, pd.Timestamp | None]:
    """The events strictly before ``as_of`` (UTC; naive times are taken as UTC), and the
    cut-off used: the latest event's time when ``as_of`` is None."""
    if as_of is not None:
        as_of = pd.Timestamp(as_of)
        as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of
        return events[events["ts"] < as_of], as_of
    return events, (events["ts"].max() if len(events) else None)
