"""Load benchmark of the site (not a test): concurrent clients against `shopthelook serve`.

Starts the real server (waitress) in a subprocess on a free port, then C client threads each
send R requests: POST /api/look on gallery scene ids, then GET /scene/<id> pages. Prints
p50/p95 latency per endpoint, errors (must be 0) and events lost (must be 0): every shown list
logs impressions, and the store must hold exactly as many as the responses said were shown.

    .venv/bin/python benchmarks/bench_web.py --catalog catalogs/demo/ikea-hvf/catalog \\
        --directions catalogs/demo/ikea-hvf/directions --clients 8 --requests 200
    .venv/bin/python benchmarks/bench_web.py --catalog catalogs/ikea-effnet-lite0 --workers 1,2

With ``--workers 1,2`` the same load runs against `serve --workers 1` and then `--workers 2`
and the requests/s ratio is printed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 600.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            body = json.loads(response.read())
            if response.status == 200:
                return body
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    raise SystemExit("server did not become healthy")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Client(threading.Thread):
    def __init__(self, port: int, user: str, scenes: list[str], n: int, kind: str, offset: int):
        super().__init__(daemon=True)
        self.port, self.user, self.scenes, self.n, self.kind = port, user, scenes, n, kind
        self.offset = offset
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.impressions = 0

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        for i in range(self.n):
            scene = self.scenes[(self.offset + i) % len(self.scenes)]
            started = time.perf_counter()
            try:
                if self.kind == "api":
                    body = json.dumps({"scene_id": scene, "user": self.user})
                    conn.request(
                        "POST", "/api/look", body=body, headers={"Content-Type": "application/json"}
                    )
                else:
                    conn.request(
                        "GET", f"/scene/{quote(scene)}", headers={"Cookie": f"stl_user={self.user}"}
                    )
                response = conn.getresponse()
                data = response.read()
                elapsed = time.perf_counter() - started
                if response.status != 200:
                    self.errors.append(f"{response.status} {data[:120]!r}")
                    continue
                if self.kind == "api":
                    self.impressions += int(json.loads(data)["impressions"])
                else:
                    self.impressions += int(response.getheader("X-Impressions", "0"))
                self.latencies.append(elapsed)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self.errors.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)


def run_phase(port: int, kind: str, scenes: list[str], clients: int, requests: int, run_id: str):
    threads = [
        Client(port, f"bench-{run_id}-{kind}-{c}", scenes, requests, kind, c * 7)
        for c in range(clients)
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    latencies = [x for t in threads for x in t.latencies]
    errors = [e for t in threads for e in t.errors]
    shown = sum(t.impressions for t in threads)
    return {
        "kind": kind,
        "wall": wall,
        "latencies": latencies,
        "errors": errors,
        "impressions": shown,
        "users": [t.user for t in threads],
    }


def run_server_phases(args, workers: int) -> tuple[list[dict], dict, list[str], bool]:
    """Start `serve --workers N`, run both phases, stop it; (results, health, scenes, ok)."""
    from ranker.events import EventStore

    work = Path(tempfile.mkdtemp(prefix="bench-web-"))
    events = work / "events.sqlite"
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "shopthelook.cli",
        "-q",
        "serve",
        "--catalog",
        args.catalog,
        "--port",
        str(port),
        "--threads",
        str(args.threads),
        "--workers",
        str(workers),
        "--events",
        str(events),
        "--instance",
        str(work / "instance"),
        "--no-rate-limits",  # one address sends every request
    ]
    for flag in ("directions", "ranker", "data_root"):
        if getattr(args, flag):
            cmd += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    server = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        started = time.perf_counter()
        health = wait_healthy(port, server)
        if workers > 1:  # every worker loads its own models: wait for all of them
            time.sleep(args.warmup)
        print(
            f"\n[{workers} worker(s)] server up in {time.perf_counter() - started:.1f} s: "
            f"{health['catalog']['products']} products, backbone "
            f"{health['catalog']['backbone']}, ranker {health['ranker']['name']}, "
            f"{health['scenes']} scenes"
        )
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/api/scenes")
        scenes = [s["scene_id"] for s in json.loads(conn.getresponse().read())["scenes"]]
        scenes = scenes[: args.scenes]
        if not scenes:
            raise SystemExit("no gallery scenes: pass --data-root with ikea/rooms.csv")
        run_id = f"{int(time.time())}-w{workers}"
        results = [
            run_phase(port, kind, scenes, args.clients, args.requests, run_id)
            for kind in ("api", "page")
        ]
        conn.request("GET", "/healthz")
        health = json.loads(conn.getresponse().read())
    finally:
        server.send_signal(signal.SIGINT)  # graceful: the events writers drain their queues
        try:
            server.wait(90)
        except subprocess.TimeoutExpired:
            server.kill()
    store = EventStore(events)
    ok = True
    print(
        f"{args.clients} clients x {args.requests} requests per endpoint, "
        f"{len(scenes)} scene ids; cache (the last worker asked) {health['cache']}"
    )
    print(
        f"{'endpoint':<16}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'req/s':>8}"
        f"{'errors':>8}{'shown':>8}{'stored':>8}{'lost':>6}"
    )
    for r in results:
        stored = sum(store.count(user_id=u, event_type="impression") for u in r["users"])
        lost = r["impressions"] - stored
        lat = [x * 1000 for x in r["latencies"]] or [float("nan")]
        r["p50"], r["p95"], r["rps"] = (
            statistics.median(lat),
            pct(lat, 0.95),
            len(r["latencies"]) / r["wall"],
        )
        name = "POST /api/look" if r["kind"] == "api" else "GET /scene/<id>"
        print(
            f"{name:<16}{len(r['latencies']):>6}{r['p50']:>9.1f}{r['p95']:>9.1f}"
            f"{max(lat):>9.1f}{r['rps']:>8.1f}{len(r['errors']):>8}"
            f"{r['impressions']:>8}{stored:>8}{lost:>6}"
        )
        for e in r["errors"][:5]:
            print("   error:", e)
        ok &= not r["errors"] and lost == 0
    store.close()
    return results, health, scenes, ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", required=True)
    ap.add_argument("--directions")
    ap.add_argument("--ranker")
    ap.add_argument("--data-root")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=200, help="requests per client per endpoint")
    ap.add_argument("--scenes", type=int, default=20, help="distinct gallery scenes cycled")
    ap.add_argument("--threads", type=int, default=8, help="waitress threads per worker")
    ap.add_argument("--workers", default="1", help="worker counts to compare in this run, e.g. 1,2")
    ap.add_argument(
        "--warmup", type=float, default=60.0, help="seconds for the other workers to load"
    )
    args = ap.parse_args()
    counts = [int(w) for w in str(args.workers).split(",") if w.strip()]
    print(f"load before: {os.getloadavg()[0]:.2f} (1-minute average), {os.cpu_count()} cores")
    runs = {w: run_server_phases(args, w) for w in counts}
    ok = all(run[3] for run in runs.values())
    if len(counts) > 1:
        base = runs[counts[0]][0]
        print(
            f"\n{'workers':<9}{'endpoint':<17}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'x req/s':>9}"
        )
        for w in counts:
            for r, b in zip(runs[w][0], base):
                name = "POST /api/look" if r["kind"] == "api" else "GET /scene/<id>"
                print(
                    f"{w:<9}{name:<17}{r['rps']:>8.1f}{r['p50']:>9.1f}{r['p95']:>9.1f}"
                    f"{r['rps'] / b['rps']:>9.2f}"
                )
    print(f"load after: {os.getloadavg()[0]:.2f}")
    print("\nOK: 0 errors, 0 events lost" if ok else "\nFAILED: errors or lost events")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
