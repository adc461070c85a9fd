"""Running the batch jobs on Dask: a LocalCluster on one machine or a scheduler at tcp://host:port.

A job is split into partitions. Each partition is one Dask task that writes its own output file
(to a temporary name, renamed when complete), so a partition that runs twice - its worker died,
or the job was stopped and started again - replaces its file instead of duplicating lines, and a
finished partition is never run again. Models load once per worker process (``worker_cached``).
A task that raises is retried ``retries`` times by the driver (not for a ShopTheLookError:
bad settings or a missing model fail the same way every time); a worker that dies is replaced by
the nanny and the scheduler reruns its task elsewhere. Each attempt leaves a marker file, so the
report says which partitions ran more than once and why the ones that never finished failed.

The jobs themselves (match, embed products, train the ranker) are in ``shopthelook.dask_jobs``,
which builds on this module.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shopthelook.core.errors import ConfigError, ShopTheLookError

log = logging.getLogger(__name__)

SCHEDULER_HELP = (
    "where to run: 'local' (a LocalCluster with one worker per core), 'local:N' (N worker "
    "processes) or 'tcp://HOST:PORT' (a running dask scheduler)"
)
_LOCAL = re.compile(r"^local(?::(\d+))?$")
_TCP = re.compile(r"^(tcp|tls)://[^:/\s]+:\d+$")


# -- connecting ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SchedulerAddress:
    kind: str  # "local" | "remote"
    workers: int | None = None
    address: str | None = None


def parse_scheduler(text: str) -> SchedulerAddress:
    text = (text or "").strip()
    match = _LOCAL.match(text)
    if match:
        workers = int(match.group(1)) if match.group(1) else None
        if workers is not None and workers < 1:
            raise ConfigError(f"--scheduler {text}: need at least one worker")
        return SchedulerAddress("local", workers=workers)
    if _TCP.match(text):
        return SchedulerAddress("remote", address=text)
    raise ConfigError(f"--scheduler {text!r} is not understood; {SCHEDULER_HELP}")


def get_client(
    scheduler: str,
    *,
    connect_timeout: float = 5.0,
    dashboard: bool = True,
    threads_per_worker: int = 1,
):
    """A dask.distributed Client; the caller closes it (closing also stops a local cluster)."""
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "Dask is not installed: pip install 'dask[distributed]' (or shopthelook[scale])"
        ) from None
    where = parse_scheduler(scheduler)
    if where.kind == "local":
        workers = where.workers or max(1, os.cpu_count() or 1)
        return Client(
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=":0" if dashboard else None,
            silence_logs=logging.ERROR,
        )
    try:
        return Client(where.address, timeout=connect_timeout)
    except Exception as exc:  # refused, timed out, or something that is not a Dask scheduler
        raise ConfigError(
            f"cannot reach a Dask scheduler at {where.address} within {connect_timeout:g} s "
            f"({type(exc).__name__}: {str(exc)[:120]}); start one with 'dask scheduler' and "
            f"'dask worker {where.address}', or use --scheduler local"
        ) from None


def dashboard_link(client) -> str | None:
    """The dashboard address, when the cluster serves one (it needs bokeh installed)."""
    import importlib.util

    if importlib.util.find_spec("bokeh") is None and _is_local(client):
        return None  # a LocalCluster without bokeh has no dashboard behind the link
    return client.dashboard_link or None


def _is_local(client) -> bool:
    return getattr(client, "cluster", None) is not None  # a cluster this process started


@contextmanager
def dask_client(scheduler: str, *, announce: bool = False, **kwargs: Any) -> Iterator[Any]:
    """A client for the ``with`` block; ``announce`` prints the dashboard address to stderr."""
    client = get_client(scheduler, **kwargs)
    try:
        if announce and dashboard_link(client):
            print(f"Dask dashboard: {dashboard_link(client)}", file=sys.stderr)
        yield client
    finally:
        client.close()


# -- per-worker model cache ---------------------------------------------------------------
_CACHE: dict[str, Any] = {}
_LOADS: dict[str, int] = {}
_CACHE_LOCK = threading.Lock()


def worker_cached(key: str, factory: Callable[[], Any]) -> Any:
    """The object built by ``factory`` once per worker process (models, catalogs)."""
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = factory()
            _LOADS[key] = _LOADS.get(key, 0) + 1
        return _CACHE[key]


def cache_loads() -> dict[str, int]:
    """How many times each cached object was built in this process (for tests and reports)."""
    return dict(_LOADS)


def stable_key(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- partitions ---------------------------------------------------------------------------
@dataclass
class Partition:
    number: int
    name: str  # file stem, unique per run: part-<run>-<number>
    payload: Any


@dataclass
class PartitionFailure:
    number: int
    attempts: int
    error: str


@dataclass
class JobReport:
    partitions: int = 0
    done_before: int = 0
    ran: int = 0
    results: dict[int, dict] = field(default_factory=dict)
    failed: list[PartitionFailure] = field(default_factory=list)
    reruns: dict[int, int] = field(default_factory=dict)  # partition -> attempts, when > 1
    seconds: float = 0.0
    workers: int = 0

    def lines(self) -> list[str]:
        out = [
            f"partitions: {self.partitions} ({self.done_before} done before, {self.ran} ran, "
            f"{len(self.failed)} failed) on {self.workers} worker(s) in {self.seconds:.1f} s"
        ]
        if self.reruns:
            out.append(
                "ran more than once (worker lost or error, output replaced): "
                + ", ".join(f"#{p} x{n}" for p, n in sorted(self.reruns.items()))
            )
        for f in self.failed:
            out.append(f"partition #{f.number} failed after {f.attempts} attempt(s): {f.error}")
        return out


def split(items: Sequence[Any], size: int) -> list[list[Any]]:
    size = max(1, int(size))
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def mark_attempt(job_dir: str | Path, name: str) -> None:
    """Called by a task when it starts: one marker file per attempt."""
    folder = Path(job_dir) / "attempts"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.{os.getpid()}.{time.time_ns()}").touch()


def attempts(job_dir: Path, name: str) -> int:
    folder = job_dir / "attempts"
    return len(list(folder.glob(f"{name}.*"))) if folder.exists() else 0


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{time.monotonic_ns()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def run_partitions(
    client,
    task: Callable[..., dict],
    partitions: Sequence[Partition],
    job_dir: Path,
    *,
    done: Callable[[Partition], bool],
    args: tuple = (),
    retries: int = 2,
    show_progress: bool = False,
    desc: str = "partitions",
) -> JobReport:
    """Run ``task(job_dir, partition, *args) -> dict`` for every partition not yet ``done``."""
    from distributed import as_completed
    from tqdm import tqdm

    started = time.perf_counter()
    report = JobReport(
        partitions=len(partitions),
        workers=len(client.scheduler_info(n_workers=-1).get("workers", {})),
    )
    todo = [p for p in partitions if not done(p)]
    report.done_before = len(partitions) - len(todo)
    by_key: dict[str, tuple[Partition, int]] = {}

    def submit(part: Partition, attempt: int):
        future = client.submit(
            task,
            str(job_dir),
            part,
            *args,
            pure=False,
            key=f"{desc.replace(' ', '-')}-{part.name}-try{attempt}",
        )
        by_key[future.key] = (part, attempt)
        return future

    pending = as_completed([submit(p, 1) for p in todo])
    bar = tqdm(total=len(todo), desc=desc, unit="part", disable=not show_progress)
    for future in pending:
        part, attempt = by_key.pop(future.key)
        try:
            report.results[part.number] = future.result()
            report.ran += 1
            bar.update(1)
        except Exception as exc:  # a task error or a KilledWorker: retry, then report
            message = f"{type(exc).__name__}: {exc}"
            log.warning("partition #%d attempt %d failed: %s", part.number, attempt, message)
            if attempt <= retries and not isinstance(exc, ShopTheLookError):
                pending.add(submit(part, attempt + 1))
            else:
                report.failed.append(
                    PartitionFailure(part.number, attempts(job_dir, part.name) or attempt, message)
                )
                bar.update(1)
        finally:
            future.release()
    bar.close()
    for part in todo:
        n = attempts(job_dir, part.name)
        if n > 1:
            report.reruns[part.number] = n
    report.seconds = time.perf_counter() - started
    return report


def check_report(report: JobReport, what: str) -> None:
    """Raise when partitions failed; their work is kept and a rerun does only what is left."""
    if report.failed:
        first = report.failed[0]
        raise ShopTheLookError(
            f"{what}: {len(report.failed)} of {report.partitions} partition(s) failed (e.g. "
            f"#{first.number}: {first.error}); finished partitions are kept, run the same "
            "command again to retry the rest"
        )
