"""The events store under bad input: a failing write never wedges the store, every field is
checked before SQL, event times lie in a documented window, and old stores holding times out
of that window are read (those rows skipped and counted) instead of crashing the tools."""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ranker.event_schema import (
    COLUMNS,
    MAX_POSITION,
    TS_MIN,
    EventError,
    is_missing,
    validate_event,
)
from ranker.events import EventStore
from shopthelook.cli import main

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def click(**extra):
    return {"event_type": "click", "user_id": "u", "product_id": "p", "ts": T0, **extra}


def test_a_write_failing_inside_its_transaction_rolls_back_and_the_store_goes_on(tmp_path):
    """Item 1: a value SQLite cannot hold (bypassing validation) fails that write only."""
    store = EventStore(tmp_path / "e.db")
    row = validate_event(click())
    row["position"] = 10**20  # overflows SQLite INTEGER after BEGIN IMMEDIATE
    with pytest.raises(EventError, match="cannot be stored"):
        store._backend.insert([row])
    # before the fix: "cannot start a transaction within a transaction" from here on
    assert store.log(click(request_id="after")) == 1
    assert store.log_many([click(request_id=f"r{i}") for i in range(3)]) == 3
    assert store.count() == 4


def test_any_exception_inside_a_write_rolls_back(tmp_path, monkeypatch):
    """The class, not the example: whatever a statement raises, the transaction is undone."""
    store = EventStore(tmp_path / "e.db")
    backend = store._backend

    def broken(conn):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO events (event_type) VALUES (NULL)")  # NOT NULL violated

    with pytest.raises(EventError):
        backend._retry(broken)

    def not_sql(conn):
        conn.execute("BEGIN IMMEDIATE")
        raise KeyError("a bug between two statements")

    with pytest.raises(KeyError):
        backend._retry(not_sql)
    assert store.log(click()) == 1
    assert not backend._conn().in_transaction


@pytest.mark.parametrize(
    "extra, words",
    [
        ({"position": 100000000000000000000}, "over the limit"),
        ({"position": float("inf")}, "not an integer"),
        ({"position": 1.7}, "not an integer"),
        ({"position": True}, "not an integer"),
        ({"position": [1]}, "not an integer"),
        ({"price": 1e300}, "finite number"),
        ({"price": True}, "not a number"),
        ({"category": ["chair"]}, "must be a string"),
        ({"category": "x" * 101}, "at most 100"),
        ({"scene_id": {"a": 1}}, "must be a string"),
        ({"request_id": "r" * 201}, "at most 200"),
        ({"user_id": "a\nb"}, "control characters"),
        ({"ts": 1e12}, "out of range"),
        ({"ts": -1e12}, "out of range"),
        ({"ts": "9999-12-31T23:59:59-01:00"}, "out of range"),
        ({"ts": "0001-01-01T00:00:00"}, "before 2000-01-01"),
        ({"ts": 0}, "before 2000-01-01"),
        ({"ts": [2024]}, "expected a datetime"),
    ],
)
def test_every_field_is_checked_before_sql(tmp_path, extra, words):
    store = EventStore(tmp_path / "e.db")
    with pytest.raises(EventError, match=words):
        store.log(click(**extra))
    assert store.count() == 0 and store.log(click()) == 1


def test_integral_positions_and_numeric_strings_still_pass():
    assert validate_event(click(position=2.0))["position"] == 2  # a DataFrame's float column
    assert validate_event(click(position="3"))["position"] == 3
    assert validate_event(click(price="19.5"))["price"] == 19.5


def test_log_groups_counts_new_events_and_duplicates_per_group(tmp_path):
    store = EventStore(tmp_path / "e.db")
    a, b = click(request_id="a"), click(request_id="b")
    assert store.log_groups([[a, a, a], [b], [a]]) == [1, 1, 0]
    with pytest.raises(EventError):
        store.log_groups([[click(request_id="c")], [click(position=-1)]])
    assert store.count() == 2  # one invalid event: nothing of the call is stored


def _write_raw(path, ts_values):
    """Rows as an older version (no time window) could store them."""
    EventStore(path).close()
    conn = sqlite3.connect(path)
    for i, ts in enumerate(ts_values):
        conn.execute(
            "INSERT INTO events (event_type, user_id, product_id, ts, dedupe_key) "
            "VALUES ('purchase', 'u', ?, ?, ?)",
            (f"p{i}", ts, f"k{i}"),
        )
    conn.commit()
    conn.close()


def test_old_stores_with_out_of_range_times_are_read_with_those_rows_skipped(tmp_path, capsys):
    """Item 2: `events stats` and to_frame skip and count such rows instead of dying."""
    path = tmp_path / "old.db"
    year_one = datetime(1, 1, 1, tzinfo=UTC).timestamp()
    _write_raw(path, [T0.timestamp(), year_one, 1e15, T0.timestamp() + 60, "not a time"])
    with EventStore(path) as store:
        frame = store.to_frame()
        assert list(frame["product_id"]) == ["p0", "p3"]
        assert store.last_out_of_range == 3
    assert main(["-q", "events", "stats", "--events", str(path)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["skipped_out_of_range"] == 3 and stats["products"] == 2


# -- properties ---------------------------------------------------------------------------
anything = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=300)
    | st.datetimes(timezones=st.none() | st.just(UTC)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
#: values of the right kind, so that accepted rows are drawn as often as refused ones
plausible = {
    "product_id": st.text(min_size=1, max_size=210) | st.integers(),
    "ts": st.floats(9e8, 2e9) | st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    "scene_id": st.text(max_size=210),
    "category": st.text(max_size=110),
    "position": st.integers(-5, 2 * MAX_POSITION) | st.floats(-1, 50),
    "price": st.floats(-10, 2e9) | st.integers(-10, 10**20),
    "request_id": st.text(max_size=210),
}
events = st.dictionaries(st.sampled_from(COLUMNS), anything, max_size=len(COLUMNS)) | (
    st.fixed_dictionaries(
        {"event_type": st.sampled_from(("click", "save")), "user_id": st.text(max_size=210)},
        optional={name: anything | plausible[name] for name in plausible},
    )
)


@settings(
    max_examples=250, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(events)
def test_validate_event_accepts_only_rows_every_backend_can_store(raw):
    """Any input: an EventError, or a row whose every value SQLite and the readers can hold."""
    now = datetime.now(UTC)
    try:
        row = validate_event(raw, now=now)
    except EventError as exc:
        assert str(exc)
        return
    assert row["event_type"] in ("impression", "click", "save", "purchase")
    for key in ("user_id", "product_id"):
        assert isinstance(row[key], str) and 0 < len(row[key]) <= 200
    for key in ("scene_id", "request_id", "category"):
        assert row[key] is None or (isinstance(row[key], str) and len(row[key]) <= 200)
    assert TS_MIN.timestamp() <= row["ts"] <= (now + timedelta(days=1)).timestamp()
    assert row["position"] is None or (
        type(row["position"]) is int and 0 <= row["position"] <= MAX_POSITION
    )
    assert row["price"] is None or (isinstance(row["price"], float) and math.isfinite(row["price"]))
    if raw.get("ts") is not None and not is_missing(raw.get("ts")):  # else stamped "now"
        assert validate_event(raw, now=now)["dedupe_key"] == row["dedupe_key"]
