"""Where events are stored: the backend interface and the SQLite file backend (WAL, one
connection per thread and process, retried when the file is busy)."""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from ranker.event_schema import COLUMNS, INSERT_COLUMNS, EventError


class Backend:
    def insert(self, rows: list[dict[str, Any]]) -> int:
        raise NotImplementedError

    def insert_groups(self, groups: list[list[dict[str, Any]]]) -> list[int]:
        """Store several groups of rows; how many of each group were new (not duplicates)."""
        return [self.insert(rows) if rows else 0 for rows in groups]

    def check_writable(self) -> None:
        """Raise EventError unless a write could start now (the health check's probe)."""

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


class SQLiteBackend(Backend):
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
        # process can still raise "locked" at once, so retry with jittered backoff. Whatever
        # fails inside a transaction rolls it back: a connection left in a transaction would
        # refuse every later write ("cannot start a transaction within a transaction").
        for attempt in range(self.RETRIES):
            conn = self._conn()
            try:
                return work(conn)
            except BaseException as exc:
                self._rollback(conn)
                if isinstance(exc, sqlite3.OperationalError) and (
                    "locked" in str(exc) or "busy" in str(exc)
                ):
                    time.sleep(min(1.0, 0.01 * 2**attempt) * (0.5 + random.random()))
                    continue
                if isinstance(exc, sqlite3.DatabaseError):
                    raise EventError(f"events database {self.path}: {exc}") from None
                if isinstance(exc, (OverflowError, sqlite3.InterfaceError, ValueError)):
                    raise EventError(
                        f"events database {self.path}: a value cannot be stored ({exc})"
                    ) from None
                raise
        raise EventError(f"events database {self.path}: still locked after {self.RETRIES} tries")

    def _rollback(self, conn: sqlite3.Connection) -> None:
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            # the connection cannot even roll back: drop it, the next call opens a fresh one
            try:
                conn.close()
            finally:
                self._local = threading.local()

    def insert(self, rows: list[dict[str, Any]]) -> int:
        return self.insert_groups([rows])[0]

    def insert_groups(self, groups: list[list[dict[str, Any]]]) -> list[int]:
        """All groups in one transaction; a row already stored (same dedupe key) is skipped."""
        sql = (
            f"INSERT OR IGNORE INTO events ({', '.join(INSERT_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in INSERT_COLUMNS)})"
        )
        values = [[tuple(r[c] for c in INSERT_COLUMNS) for r in rows] for rows in groups]

        def work(conn: sqlite3.Connection) -> list[int]:
            conn.execute("BEGIN IMMEDIATE")
            stored = []
            for group in values:
                before = conn.total_changes
                conn.executemany(sql, group)
                stored.append(conn.total_changes - before)
            conn.execute("COMMIT")
            return stored

        return self._retry(work)

    def check_writable(self) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")

        self._retry(work)

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
