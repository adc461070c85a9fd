"""The engagement events store: validation, duplicates, time order, export, concurrency."""

from __future__ import annotations

import multiprocessing as mp
import threading
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from ranker.events import EVENT_TYPES, Event, EventError, EventStore
from shopthelook.core.errors import ShopTheLookError

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_log_and_read_back(tmp_path):
    store = EventStore(tmp_path / "events.db")
    store.log(
        Event(
            "click",
            "alice",
            "p1",
            ts=T0,
            scene_id="s1",
            category="chair",
            position=2,
            request_id="r1",
        )
    )
    store.log(
        {
            "event_type": "purchase",
            "user_id": "alice",
            "product_id": "p1",
            "ts": "2024-05-02T09:30:00Z",
            "price": 19.5,
        }
    )
    frame = store.to_frame()
    assert list(frame["event_type"]) == ["click", "purchase"]
    assert frame.loc[0, "scene_id"] == "s1" and frame.loc[0, "position"] == 2
    assert frame.loc[1, "price"] == 19.5
    assert str(frame["ts"].dt.tz) == "UTC"
    assert store.count() == 2 and store.count(event_type="click", user_id="alice") == 1
    store.close()


def test_event_without_time_is_stamped_now(tmp_path):
    store = EventStore(f"sqlite:///{tmp_path / 'e.db'}")
    before = datetime.now(UTC)
    store.log(Event("save", "bob", "p9"))
    ts = store.to_frame()["ts"].iloc[0]
    assert (
        pd.Timestamp(before) - timedelta(seconds=1)
        <= ts
        <= pd.Timestamp.now(tz="UTC") + timedelta(seconds=1)
    )


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"event_type": "like", "user_id": "u", "product_id": "p"}, "unknown"),
        ({"event_type": "click", "user_id": "", "product_id": "p"}, "empty user_id"),
        ({"event_type": "click", "user_id": "u", "product_id": "  "}, "empty product_id"),
        ({"event_type": "click", "user_id": "u", "product_id": "p", "ts": "yesterday"}, "ISO 8601"),
        ({"event_type": "click", "user_id": "u", "product_id": "p", "position": -1}, "negative"),
        (
            {"event_type": "click", "user_id": "u", "product_id": "p", "price": float("inf")},
            "finite",
        ),
        (
            {"event_type": "click", "user_id": "u", "product_id": "p", "price": "cheap"},
            "not a number",
        ),
        (
            {"event_type": "click", "user_id": "u", "product_id": "p", "colour": "red"},
            "unknown fields",
        ),
        ({"event_type": "click", "user_id": "u", "product_id": "p", "ts": "2999-01-01"}, "future"),
    ],
)
def test_invalid_events_are_refused_clearly(tmp_path, bad, words):
    store = EventStore(tmp_path / "e.db")
    with pytest.raises(EventError, match=words) as info:
        store.log(bad)
    assert isinstance(info.value, ShopTheLookError)
    assert store.count() == 0


def test_log_many_keeps_the_good_rows_and_reports_the_bad(tmp_path):
    store = EventStore(tmp_path / "e.db")
    rows = [
        {"event_type": "click", "user_id": "u1", "product_id": "p1", "ts": T0},
        {"event_type": "bogus", "user_id": "u1", "product_id": "p1"},
        {"event_type": "click", "user_id": None, "product_id": "p1"},
        Event("purchase", "u2", "p2", ts=T0),
    ]
    assert store.log_many(rows) == 2
    assert store.last_skipped == 2
    assert store.count() == 2


def test_duplicates_are_stored_once_but_distinct_requests_twice(tmp_path):
    store = EventStore(tmp_path / "e.db")
    e = Event("purchase", "u1", "p1", ts=T0, request_id="order-7")
    store.log(e)
    store.log(e)  # a retried request
    assert store.log_many([e, e]) == 0
    store.log(Event("purchase", "u1", "p1", ts=T0, request_id="order-8"))  # a second unit
    assert store.count() == 2


def test_missing_optional_fields_from_a_dataframe_are_none(tmp_path):
    frame = pd.DataFrame(
        [
            {
                "event_type": "click",
                "user_id": "u",
                "product_id": "p",
                "ts": T0,
                "position": float("nan"),
                "price": float("nan"),
                "scene_id": None,
            }
        ]
    )
    store = EventStore(tmp_path / "e.db")
    assert store.log_many(frame.to_dict("records")) == 1
    row = store.to_frame().iloc[0]
    assert pd.isna(row["position"]) and pd.isna(row["price"]) and row["scene_id"] is None


def test_out_of_order_timestamps_come_back_sorted_and_filterable(tmp_path):
    store = EventStore(tmp_path / "e.db")
    for days in (5, 1, 3, 2, 4):
        store.log(Event("click", "u", f"p{days}", ts=T0 + timedelta(days=days)))
    frame = store.to_frame()
    assert list(frame["product_id"]) == ["p1", "p2", "p3", "p4", "p5"]
    window = store.to_frame(since=T0 + timedelta(days=2), until=T0 + timedelta(days=4))
    assert list(window["product_id"]) == ["p2", "p3"]


def test_empty_store_exports_an_empty_table(tmp_path):
    store = EventStore(tmp_path / "e.db")
    assert store.count() == 0
    assert store.to_frame().empty
    assert store.export_parquet(tmp_path / "out.parquet") == 0
    assert list(pd.read_parquet(tmp_path / "out.parquet").columns)[:3] == [
        "event_type",
        "user_id",
        "product_id",
    ]


def test_export_parquet_round_trips(tmp_path):
    store = EventStore(tmp_path / "e.db")
    store.log_many(
        Event(EVENT_TYPES[i % 4], f"u{i}", f"p{i}", ts=T0 + timedelta(minutes=i), price=float(i))
        for i in range(20)
    )
    assert store.export_parquet(tmp_path / "x" / "events.parquet") == 20
    back = pd.read_parquet(tmp_path / "x" / "events.parquet")
    assert len(back) == 20 and back["price"].sum() == sum(range(20))


def test_folder_instead_of_database_file_is_refused(tmp_path):
    with pytest.raises(EventError, match="folder"):
        EventStore(tmp_path)


def test_server_url_goes_through_sqlalchemy(tmp_path):
    pytest.importorskip("sqlalchemy")
    # SQLAlchemy's own sqlite dialect stands in for a server database here
    store = EventStore(f"sqlite+pysqlite:///{tmp_path / 'server.db'}")
    store.log(Event("click", "u", "p", ts=T0, request_id="r"))
    assert (
        store.log_many(
            [Event("click", "u", "p", ts=T0, request_id="r"), Event("save", "u", "p", ts=T0)]
        )
        == 1
    )
    assert store.count() == 2 and store.count(event_type="save") == 1
    assert list(store.to_frame()["event_type"]) == ["click", "save"]


def test_unknown_driver_is_a_clear_error():
    pytest.importorskip("sqlalchemy")
    with pytest.raises(EventError, match="driver"):
        EventStore("nosuchdb://user@host/db")


def _write_from_process(path: str, worker: int, n: int) -> None:
    store = EventStore(path)
    for i in range(n):
        store.log(Event("click", f"proc{worker}", f"p{i}", ts=T0 + timedelta(seconds=i)))
    store.log_many(Event("impression", f"proc{worker}", f"q{i}", ts=T0) for i in range(n))
    store.close()


def test_concurrent_threads_and_processes_lose_nothing(tmp_path):
    path = str(tmp_path / "shared.db")
    store = EventStore(path)
    n = 40

    def thread_writer(worker: int) -> None:
        for i in range(n):
            store.log(Event("save", f"thread{worker}", f"p{i}", ts=T0 + timedelta(seconds=i)))

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write_from_process, args=(path, w, n)) for w in range(3)]
    threads = [threading.Thread(target=thread_writer, args=(w,)) for w in range(4)]
    for p in procs:
        p.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert store.count(event_type="save") == 4 * n
    assert store.count(event_type="click") == 3 * n
    assert store.count(event_type="impression") == 3 * n
    assert store.count() == 10 * n
