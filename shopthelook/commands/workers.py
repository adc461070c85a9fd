"""`shopthelook serve --workers N`: N server processes sharing one listening socket.

The parent opens the socket, then forks N workers before any model is loaded; each worker
builds its own app (models, catalog, ranker and events writer load once per worker), runs
waitress on the inherited socket, and the kernel hands each new connection to one of them.
Torch, OpenMP and FAISS threads per worker are the machine's cores divided by N, so that N
workers never run more compute threads than there are cores. Events from every worker go to
the same SQLite file (WAL, a busy timeout and retries serialise the writers across
processes). A worker that dies is started again; Ctrl+C or SIGTERM stops them all, and each
drains its events queue first.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass

from shopthelook.core.errors import ConfigError

log = logging.getLogger(__name__)

#: a worker that dies this soon after starting, this many times in a row, stops the server
EARLY_DEATH_S = 30.0
EARLY_DEATHS_MAX = 3


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_workers(workers: int) -> int:
    """``--workers``: 1 to cores x 4; returns the compute threads each worker gets."""
    n = cores()
    if workers < 1:
        raise ConfigError(f"--workers {workers}: give at least 1 worker process")
    if workers > 4 * n:
        raise ConfigError(
            f"--workers {workers}: this machine has {n} core(s); more than {4 * n} workers "
            f"(cores x 4) only compete for them. Use --workers {n} (one per core) and "
            "--threads for more requests at once"
        )
    return max(1, n // workers)


@dataclass
class _Worker:
    index: int
    pid: int
    started: float


def _worker_main(config: dict, sock: socket.socket, threads: int, compute_threads: int) -> None:
    # before torch, OpenMP or FAISS start their pools in this process
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(compute_threads)
    os.environ["SHOPTHELOOK_THREADS"] = str(compute_threads)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    import waitress

    from web import create_app, services_of

    app = create_app(config)
    server = waitress.create_server(app, sockets=[sock], threads=threads, ident="shopthelook")
    print(f"worker {os.getpid()} ready ({compute_threads} compute thread(s))", flush=True)
    try:
        server.run()
    finally:
        services_of(app).close()  # the events writer drains its queue (no atexit after fork)


def _fork_worker(index: int, config, sock, threads, compute_threads) -> _Worker:
    pid = os.fork()
    if pid == 0:  # the child: serve until told to stop
        code = 0
        try:
            _worker_main(config, sock, threads, compute_threads)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
        except BaseException:
            log.exception("worker %d failed", index)
            code = 1
        finally:
            os._exit(code)
    return _Worker(index, pid, time.monotonic())


def run_workers(
    config: dict, sock: socket.socket, host: str, port: int, threads: int, workers: int
) -> int:
    """Serve with ``workers`` processes on the listening ``sock``; returns the exit status."""
    if not hasattr(os, "fork"):
        raise ConfigError("--workers needs a system with fork (Linux, macOS); use --workers 1")
    compute_threads = check_workers(workers)
    sock.setblocking(False)
    if config.get("RATELIMIT_ENABLED", True) and "memory" in str(
        config.get("RATELIMIT_STORAGE_URI") or "memory://"
    ):
        print(
            f"note: rate limits are counted in each of the {workers} workers (up to {workers}x "
            "the limit per client); --rate-limit-storage redis://HOST:6379 shares them",
            file=sys.stderr,
        )
    stopping = False

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    alive = {}
    for i in range(workers):
        w = _fork_worker(i, config, sock, threads, compute_threads)
        alive[w.pid] = w
    print(
        f"serving on http://{host}:{port}/ with {workers} workers x {threads} request threads, "
        f"{compute_threads} compute thread(s) each (Ctrl+C stops)",
        flush=True,
    )
    early, status = 0, 0
    try:
        while alive and not stopping:
            try:
                pid, code = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.2)
                continue
            w = alive.pop(pid, None)
            if w is None or stopping:
                continue
            lived = time.monotonic() - w.started
            early = early + 1 if lived < EARLY_DEATH_S else 0
            log.warning("worker %d (pid %d) exited (%s) after %.0f s", w.index, pid, code, lived)
            if early >= EARLY_DEATHS_MAX:
                print(
                    f"error: workers keep exiting within {EARLY_DEATH_S:.0f} s of starting; "
                    "run with --workers 1 to see why",
                    file=sys.stderr,
                )
                status = 1
                break
            nw = _fork_worker(w.index, config, sock, threads, compute_threads)
            alive[nw.pid] = nw
    finally:
        for pid in alive:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 60
        while alive and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                alive.pop(pid, None)
            else:
                time.sleep(0.1)
        for pid in alive:  # still draining after a minute
            os.kill(pid, signal.SIGKILL)
        sock.close()
    return status
