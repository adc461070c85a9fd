"""The events store on a server database (PostgreSQL, MySQL, ...) through SQLAlchemy Core.

SQLAlchemy is optional (``pip install sqlalchemy`` plus the database's driver); without it a
server URL is refused with a message saying what to install.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ranker.event_backends import Backend
from ranker.event_schema import COLUMNS, INSERT_COLUMNS, EventError


class ServerBackend(Backend):
    """Server databases (PostgreSQL, MySQL, ...) through SQLAlchemy Core."""

    def __init__(self, url: str) -> None:
        try:
            import sqlalchemy as sa
        except ImportError:
            raise EventError(
                f"events database {url}: server databases need SQLAlchemy and the database "
                "driver (pip install sqlalchemy psycopg2-binary); or give a file path for SQLite"
            ) from None
        self.sa = sa
        try:
            self.engine = sa.create_engine(url, pool_pre_ping=True)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
            raise EventError(
                f"events database {url}: cannot connect ({exc}); is its driver installed?"
            ) from None
        meta = sa.MetaData()
        self.table = sa.Table(
            "events",
            meta,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("event_type", sa.String(16), nullable=False),
            sa.Column("user_id", sa.String(200), nullable=False, index=True),
            sa.Column("product_id", sa.String(200), nullable=False),
            sa.Column("ts", sa.Float, nullable=False, index=True),
            sa.Column("scene_id", sa.String(200)),
            sa.Column("category", sa.String(100)),
            sa.Column("position", sa.Integer),
            sa.Column("price", sa.Float),
            sa.Column("request_id", sa.String(200)),
            sa.Column("dedupe_key", sa.String(40), nullable=False, unique=True),
        )
        try:
            meta.create_all(self.engine)
        except sa.exc.SQLAlchemyError as exc:
            raise EventError(
                f"events database {url}: cannot create the events table ({exc})"
            ) from None

    def insert(self, rows: list[dict[str, Any]]) -> int:
        # engine.begin() rolls the transaction back on any exception
        try:
            return self._insert(rows)
        except self.sa.exc.SQLAlchemyError as exc:
            raise EventError(f"events database: the write failed ({type(exc).__name__})") from None

    def check_writable(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(self.sa.select(1))
        except self.sa.exc.SQLAlchemyError as exc:
            raise EventError(f"events database: unreachable ({type(exc).__name__})") from None

    def _insert(self, rows: list[dict[str, Any]]) -> int:
        sa = self.sa
        keys = [r["dedupe_key"] for r in rows]
        stored = 0
        with self.engine.begin() as conn:
            existing = set()
            for start in range(0, len(keys), 500):
                part = keys[start : start + 500]
                query = sa.select(self.table.c.dedupe_key).where(self.table.c.dedupe_key.in_(part))
                existing.update(conn.execute(query).scalars())
            fresh, seen = [], set(existing)
            for r in rows:
                if r["dedupe_key"] not in seen:
                    seen.add(r["dedupe_key"])
                    fresh.append({c: r[c] for c in INSERT_COLUMNS})
            if not fresh:
                return 0
            try:
                with conn.begin_nested():
                    conn.execute(self.table.insert(), fresh)
                return len(fresh)
            except sa.exc.IntegrityError:
                pass  # another writer stored some of them meanwhile: insert one by one
            for row in fresh:
                try:
                    with conn.begin_nested():
                        conn.execute(self.table.insert(), [row])
                    stored += 1
                except sa.exc.IntegrityError:
                    continue
        return stored

    def count(self, filters: dict[str, Any]) -> int:
        sa = self.sa
        query = sa.select(sa.func.count()).select_from(self.table)
        for k, v in filters.items():
            query = query.where(self.table.c[k] == v)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def select(self, lo: float | None, hi: float | None) -> pd.DataFrame:
        t = self.table
        query = self.sa.select(*(t.c[c] for c in COLUMNS)).order_by(t.c.ts, t.c.id)
        if lo is not None:
            query = query.where(t.c.ts >= lo)
        if hi is not None:
            query = query.where(t.c.ts < hi)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return pd.DataFrame([tuple(r) for r in rows], columns=list(COLUMNS))

    def close(self) -> None:
        self.engine.dispose()
