"""The web layer's door to the events store: one writer thread owns the store.

Waitress serves requests on several threads, while an SQLite connection belongs to the
thread that opened it and concurrent writers lock each other out. So every store operation
runs on one thread, in the order it was asked for: page requests queue their impressions and
go on (the writer batches them into one transaction), the events API waits for its write so
that a 201 means the events are stored, and reads (counts) see every write queued before them.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: most queued writes merged into one store transaction
BATCH_MAX = 512
#: absolute paths in an error message (the health report shows the last error, not where)
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:/[^\s/:'\"]+){2,}/?")


def without_paths(message: str) -> str:
    """An error message fit for clients: file-system paths replaced by <path>."""
    return _PATH.sub("<path>", message)


@dataclass
class _Write:
    events: list[Any]
    done: Future = field(default_factory=Future)


@dataclass
class _Call:
    fn: Callable[[Any], Any]
    done: Future = field(default_factory=Future)


_STOP = object()


class EventSink:
    """Serialises every operation on an EventStore onto one thread."""

    def __init__(self, url: str | Path, store_factory: Callable[[str | Path], Any] | None = None):
        if store_factory is None:
            from ranker.events import EventStore

            store_factory = EventStore
        self.url = str(url)
        self._factory = store_factory
        self._queue: queue.Queue = queue.Queue()
        self._opened: Future = Future()
        self._lock = threading.Lock()
        self.logged = 0
        self.failed = 0
        #: when the latest write failed (monotonic seconds) while none has succeeded since
        self.failing_since: float | None = None
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
        self._thread.start()
        # an unopenable store is a configuration error: raise it here, at startup
        self._opened.result(timeout=60)

    # -- called from request threads ----------------------------------------------------
    def log(self, events: Iterable[Any]) -> Future:
        """Queue events; the future resolves to the number stored (or to the store's error)."""
        write = _Write(list(events))
        if not write.events:
            write.done.set_result(0)
            return write.done
        if not self._thread.is_alive():
            write.done.set_exception(RuntimeError("the event writer has stopped"))
            return write.done
        self._queue.put(write)
        return write.done

    def call(self, fn: Callable[[Any], Any], timeout: float = 30.0) -> Any:
        """Run ``fn(store)`` on the writer thread after every write queued before it."""
        item = _Call(fn)
        self._queue.put(item)
        return item.done.result(timeout=timeout)

    def count(self, **filters: Any) -> int:
        return int(self.call(lambda store: store.count(**filters)))

    def flush(self, timeout: float = 30.0) -> None:
        """Return once every event queued so far has been written."""
        self.call(lambda store: None, timeout=timeout)

    def close(self, timeout: float = 30.0) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def failing(self) -> bool:
        """Whether the latest write failed (and none has succeeded since)."""
        return self.failing_since is not None

    def health(self) -> dict[str, Any]:
        with self._lock:
            since = self.failing_since
            return {
                "queued": self.pending,
                "written": self.logged,
                "failed": self.failed,
                "failing_for_s": None if since is None else round(time.monotonic() - since, 1),
                "last_error": self.last_error,
            }

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    # -- the writer thread --------------------------------------------------------------
    def _run(self) -> None:
        try:
            store = self._factory(self.url)
        except BaseException as exc:  # handed to the constructor, which re-raises it
            self._opened.set_exception(exc)
            return
        self._opened.set_result(True)
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                if isinstance(item, _Call):
                    self._run_call(store, item)
                    continue
                batch = [item]
                stop_after = False
                pending_call = None
                while len(batch) < BATCH_MAX:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stop_after = True
                        break
                    if isinstance(nxt, _Call):
                        pending_call = nxt  # writes queued before it must land first
                        break
                    batch.append(nxt)
                self._write(store, batch)
                if pending_call is not None:
                    self._run_call(store, pending_call)
                if stop_after:
                    break
        finally:
            try:
                store.close()
            except Exception:  # closing must not hide why the loop ended
                log.exception("closing the events store failed")

    def _run_call(self, store: Any, item: _Call) -> None:
        try:
            item.done.set_result(item.fn(store))
        except BaseException as exc:
            item.done.set_exception(exc)

    def _write(self, store: Any, batch: list[_Write]) -> None:
        try:
            stored = self._store(store, [w.events for w in batch])
        except Exception:
            # one bad write must not lose the others: retry each on its own
            for w in batch:
                self._write_one(store, w)
            return
        self._succeeded(sum(len(w.events) for w in batch))
        for w, n in zip(batch, stored, strict=True):
            w.done.set_result(n)

    def _write_one(self, store: Any, w: _Write) -> None:
        try:
            (n,) = self._store(store, [w.events])
        except Exception as exc:
            log.error("could not store %d event(s): %s", len(w.events), exc)
            self._failed(len(w.events), exc)
            w.done.set_exception(exc)
            return
        self._succeeded(len(w.events))
        w.done.set_result(n)

    @staticmethod
    def _store(store: Any, groups: list[list[Any]]) -> list[int]:
        """How many events of each group were new; one transaction when the store can."""
        log_groups = getattr(store, "log_groups", None)
        if log_groups is not None:
            return list(log_groups(groups))
        counts = [store.log_many(events) for events in groups]
        return [n if isinstance(n, int) else len(g) for n, g in zip(counts, groups, strict=True)]

    def _succeeded(self, n: int) -> None:
        with self._lock:
            self.logged += n
            self.failing_since = None

    def _failed(self, n: int, exc: Exception) -> None:
        with self._lock:
            self.failed += n
            if self.failing_since is None:
                self.failing_since = time.monotonic()
            self.last_error = without_paths(f"{type(exc).__name__}: {exc}")[:300]
