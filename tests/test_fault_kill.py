"""Fault test: `catalog build` and `catalog add` killed with SIGKILL at random moments.

Half of the kills land at a random time of the whole run (start-up, reading, embedding), half
in the write itself (once its temporary folder appears, after a random few milliseconds).
After every kill the catalog opens with every check passing and is the old catalog or the
new one, never a mixture; the next write removes what the killed one left behind.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from catalog import Catalog
from tests.helpers import write_products

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TRIALS = 6


def _command(*args) -> list[str]:
    return [sys.executable, "-m", "shopthelook.cli", "-q", "catalog", *map(str, args)]


def _kill_at_random(cmd: list[str], out: Path, rng: random.Random, in_write: bool) -> None:
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    before = {p.name for p in out.parent.iterdir()}
    if in_write:
        # wait (while it runs) for the write's temporary folder, then a few milliseconds more
        while proc.poll() is None and not any(
            p.name.startswith(f".{out.name}.tmp-") and p.name not in before
            for p in out.parent.iterdir()
        ):
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.03))
    else:
        time.sleep(rng.uniform(0.0, 1.5))
    proc.kill()
    proc.wait()


def test_killed_builds_and_adds_leave_the_old_or_the_new_catalog(tmp_path):
    table = write_products(tmp_path / "src", 12)
    extra = write_products(tmp_path / "extra", 4, seed0=40)
    out = tmp_path / "cat"
    build = _command("build", "--products", table, "--out", out, "--backbone", "hvf")
    add = _command("add", "--catalog", out, "--products", extra, "--replace")
    subprocess.run(build, cwd=REPO, check=True, capture_output=True)
    old = {f"P{i:03d}" for i in range(12)}
    states = [old, old | {f"P{i:03d}" for i in range(40, 44)}]  # built, or built plus added
    rng = random.Random(20240501)
    for trial in range(TRIALS):
        cmd = add if trial % 4 < 2 else build
        _kill_at_random(cmd, out, rng, in_write=trial % 2 == 1)
        catalog = Catalog.load(out)  # every consistency check of a load
        assert set(catalog.products["product_id"]) in states, f"trial {trial}: half a catalog"
        assert len(catalog.products) == sum(catalog.manifest["counts"].values())
    subprocess.run(add, cwd=REPO, check=True, capture_output=True)
    assert set(Catalog.load(out).products["product_id"]) == states[1]
    leftovers = [
        p.name
        for p in tmp_path.iterdir()
        if p.name.startswith(".cat.") and not p.name.startswith(".cat.v-")
    ]
    assert not leftovers, leftovers
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(".cat.v-")]) <= 2
