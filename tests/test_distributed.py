"""Dask jobs on a 2-process LocalCluster over drawn images: match, embed, train, faults.

One cluster serves the module (starting one costs seconds). The detector is a fixed-box stub so
no weights are needed; the embedder is the real 'hvf' backbone and the catalog a real Catalog.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed", reason="Dask is not installed (pip install 'dask[distributed]')")

from detector.base import Detector  # noqa: E402
from shopthelook.core.errors import ConfigError  # noqa: E402
from shopthelook.core.types import Box, Detection  # noqa: E402
from shopthelook.dask_jobs import MatchPipelineSpec, distributed_embed_products, distributed_match
from shopthelook.distributed import cache_loads, get_client, parse_scheduler
from tests.conftest import draw_image  # noqa: E402
from tests.helpers import build_catalog  # noqa: E402

N_SCENES = 12


def scene_number(image) -> int:
    return image.width - 96  # scene i is drawn 96+i pixels wide, so a detector can tell them apart


class OneChair(Detector):
    """A chair box at a fixed place; kills its process or raises on chosen scenes (faults)."""

    name = "one-chair"

    def __init__(self, kill_marker: str = "", broken: int = -1) -> None:
        self.kill_marker, self.broken = kill_marker, broken

    def detect(self, image):
        if self.kill_marker and scene_number(image) == 5:
            try:  # only the first process to claim the marker dies: the rerun then succeeds
                os.rename(self.kill_marker, self.kill_marker + ".used")
            except FileNotFoundError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        if scene_number(image) == self.broken:
            raise RuntimeError(f"detector crashed on scene {self.broken}")
        return [Detection(Box(10, 10, 74, 74), "chair", 0.9, "chair", ("chair",))]


@dataclass(frozen=True)
class StubSpec(MatchPipelineSpec):
    kill_marker: str = ""
    broken: int = -1

    def pipeline_kwargs(self):
        return {"detector": OneChair(self.kill_marker, self.broken)}


@pytest.fixture(scope="module")
def client():
    client = get_client("local:2", dashboard=False)
    yield client
    client.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    catalog = build_catalog(root, backbone="hvf", n=12)
    (root / "scenes").mkdir()
    rows = []
    for i in range(N_SCENES):
        path = root / "scenes" / f"scene-{i:03d}.png"
        draw_image(100 + i, (96 + i, 96)).save(path)
        rows.append({"scene_id": f"s{i:03d}", "image": str(path)})
    return root, catalog, pd.DataFrame(rows)


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_scheduler_strings_are_checked():
    assert parse_scheduler("local").workers is None
    assert parse_scheduler("local:3").workers == 3
    assert parse_scheduler("tcp://10.0.0.5:8786").address == "tcp://10.0.0.5:8786"
    for bad in ("local:0", "spark://x:1", "tcp://nohost", ""):
        with pytest.raises(ConfigError, match="scheduler"):
            parse_scheduler(bad)


def test_unreachable_scheduler_is_a_clear_error_not_a_hang():
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="cannot reach a Dask scheduler at tcp://127.0.0.1:9"):
        get_client("tcp://127.0.0.1:9", connect_timeout=1)
    assert time.perf_counter() - started < 15


def test_match_on_two_workers_equals_the_serial_job_and_loads_models_once(client, world, tmp_path):
    from shopthelook.batch import run_match

    root, catalog, scenes = world
    spec = StubSpec(str(catalog.path))
    summary, report = distributed_match(
        client, spec, scenes, tmp_path / "out.jsonl", top_k=3, partition_size=3
    )
    assert report.partitions == 4 and report.ran == 4 and not report.failed
    assert summary.processed == N_SCENES and summary.failures == 0
    lines = read_lines(tmp_path / "out.jsonl")
    assert sorted(r["scene_id"] for r in lines) == list(scenes["scene_id"])
    assert not (tmp_path / ".out.jsonl.parts").exists()  # merged and cleaned up

    serial = tmp_path / "serial.jsonl"
    run_match(spec.build(), scenes, serial, top_k=3)
    expected = {
        r["scene_id"]: [p["product_id"] for p in r["objects"][0]["products"]]
        for r in read_lines(serial)
    }
    got = {r["scene_id"]: [p["product_id"] for p in r["objects"][0]["products"]] for r in lines}
    assert got == expected

    loads = client.run(cache_loads)  # worker address -> {key: times built}
    assert all(n == 1 for per_worker in loads.values() for n in per_worker.values())


def test_a_killed_worker_redoes_its_partition_without_duplicates(client, world, tmp_path):
    root, catalog, scenes = world
    marker = tmp_path / "kill-me"
    marker.touch()
    spec = StubSpec(str(catalog.path), kill_marker=str(marker))
    summary, report = distributed_match(
        client, spec, scenes, tmp_path / "out.jsonl", top_k=2, partition_size=4
    )
    assert (tmp_path / "kill-me.used").exists(), "the worker was never killed"
    lines = read_lines(tmp_path / "out.jsonl")
    assert sorted(r["scene_id"] for r in lines) == list(scenes["scene_id"])  # once each
    assert all(r["error"] is None for r in lines)
    assert not report.failed
    assert report.reruns.get(1, 0) >= 2  # scene-005 is in partition #1 (scenes 4-7)


def test_a_failing_partition_is_retried_reported_and_resumed(client, world, tmp_path):
    root, catalog, scenes = world
    out = tmp_path / "out.jsonl"
    broken = StubSpec(str(catalog.path), broken=9)  # not a ShopTheLookError: a bug
    summary, report = distributed_match(
        client, broken, scenes, out, top_k=2, partition_size=4, retries=1
    )
    assert [f.number for f in report.failed] == [2]
    assert (
        report.failed[0].attempts == 2 and "detector crashed on scene 9" in report.failed[0].error
    )
    assert "failed after 2 attempt(s)" in "\n".join(report.lines())
    done = sorted(r["scene_id"] for r in read_lines(out))
    assert done == [f"s{i:03d}" for i in range(8)]  # partitions 0 and 1 kept, 2 not written

    fixed = StubSpec(str(catalog.path))
    summary, report = distributed_match(client, fixed, scenes, out, top_k=2, partition_size=4)
    assert summary.skipped == 8 and summary.processed == 4 and not report.failed
    assert sorted(r["scene_id"] for r in read_lines(out)) == list(scenes["scene_id"])


def test_a_stopped_run_keeps_its_finished_partitions(client, world, tmp_path):
    root, catalog, scenes = world
    out = tmp_path / "out.jsonl"
    parts = tmp_path / ".out.jsonl.parts" / "parts"
    parts.mkdir(parents=True)
    # what a run stopped after its first partition leaves behind
    left = [{"scene_id": "s000", "image": "x", "objects": [], "error": None, "note": "kept"}]
    (parts / "part-19990101000000-00000.jsonl").write_text(json.dumps(left[0]) + "\n")
    summary, report = distributed_match(
        client, StubSpec(str(catalog.path)), scenes, out, top_k=2, partition_size=6
    )
    lines = read_lines(out)
    assert sorted(r["scene_id"] for r in lines) == list(scenes["scene_id"])
    assert [r.get("note") for r in lines if r["scene_id"] == "s000"] == ["kept"]
    assert summary.skipped == 1 and summary.processed == N_SCENES - 1


def test_embed_products_matches_the_serial_embedding_and_records_bad_images(client, world):
    from catalog import embed_products
    from embedder import create_embedder
    from shopthelook.core.config import load_settings

    root, catalog, scenes = world
    settings = load_settings(backbone="hvf")
    paths = list(catalog.products["image"])
    (root / "broken.png").write_bytes(b"not an image")
    paths.insert(5, str(root / "broken.png"))
    vectors, ok, failures = distributed_embed_products(
        client, paths, settings=settings, work_dir=root / "work", partition_size=4
    )
    expected, expected_ok, _ = embed_products(paths, create_embedder(settings), settings=settings)
    assert ok == expected_ok and 5 not in ok
    assert len(failures) == 1 and "broken.png" in failures[0]["image"]
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    assert not any((root / "work").iterdir())  # partitions merged, then removed


def test_ranker_trains_on_the_cluster_with_lightgbm_dask(client):
    from ranker.features import CATEGORICAL, FEATURES
    from ranker.train import TrainConfig
    from shopthelook.dask_jobs import distributed_train_ranker

    rng = np.random.default_rng(0)
    sizes = np.full(60, 10)
    X = rng.normal(size=(int(sizes.sum()), len(FEATURES))).astype(np.float32)
    for name in CATEGORICAL:
        X[:, FEATURES.index(name)] = rng.integers(0, 3, size=len(X))
    X[:, FEATURES.index(CATEGORICAL[0])] = np.nan  # unknown for every row: crashed lightgbm.dask
    signal_column = next(i for i, f in enumerate(FEATURES) if f not in CATEGORICAL)
    relevance = X[:, signal_column] + 0.3 * rng.normal(size=len(X))
    y = np.zeros(len(X))
    for g in range(len(sizes)):  # the best item of each query group is the positive
        rows = slice(g * 10, g * 10 + 10)
        y[rows][np.argmax(relevance[rows])] = 1
    config = TrainConfig(n_estimators=30, min_data_in_leaf=5)
    valid = (X[:200], y[:200], sizes[:20])
    booster, info = distributed_train_ranker(client, X, y, sizes, valid, config)
    assert info["dask_workers"] == 2 and 1 <= info["best_iteration"] <= 30
    assert info["constant_nan_features"] == [CATEGORICAL[0]]
    scores = booster.predict(X, num_iteration=booster.best_iteration)
    hits = np.mean(
        [
            np.argmax(scores[g * 10 : g * 10 + 10]) == np.argmax(y[g * 10 : g * 10 + 10])
            for g in range(len(sizes))
        ]
    )
    assert hits > 0.5  # learnt the signal (chance is 0.1)

    # boosted from the signal column's order: the prior travels in info and adds to the trees
    from dataclasses import replace

    from ranker.prior import Prior
    from ranker.train import predict

    boosted = replace(config, prior_feature=FEATURES[signal_column])
    booster, info = distributed_train_ranker(client, X, y, sizes, valid, boosted)
    prior = Prior.from_dict(info["prior"])
    assert prior.feature == FEATURES[signal_column] and prior.scale > 0
    scores = predict(booster, X, prior)
    top = [np.argmax(scores[g * 10 : g * 10 + 10]) for g in range(len(sizes))]
    assert np.mean([y[g * 10 + t] for g, t in enumerate(top)]) > 0.5


def test_a_stopped_catalog_build_embeds_only_the_partitions_left(client, world):
    from catalog import embed_products
    from embedder import create_embedder
    from shopthelook.core.config import load_settings
    from shopthelook.distributed import stable_key

    root, catalog, scenes = world
    settings = load_settings(backbone="hvf")
    paths = list(catalog.products["image"])
    # what a build stopped after its first partition leaves (marked so a rerun would show)
    signature = stable_key(paths, settings.backbone, settings.head, 4, settings.max_image_pixels)
    parts = root / "resume" / f"embed-{signature}" / "parts"
    parts.mkdir(parents=True)
    kept = np.full((4, catalog.dim), 0.5, np.float32)
    np.savez(parts / "part-00000.npz", vectors=kept, ok=np.arange(4), failures=np.array("[]"))
    vectors, ok, failures = distributed_embed_products(
        client, paths, settings=settings, work_dir=root / "resume", partition_size=4
    )
    assert ok == list(range(len(paths))) and not failures
    np.testing.assert_array_equal(vectors[:4], kept)  # not embedded again
    expected, _, _ = embed_products(paths[4:], create_embedder(settings), settings=settings)
    np.testing.assert_allclose(vectors[4:], expected, atol=1e-5)


def test_scheduler_flag_alone_means_a_local_cluster():
    import argparse

    from shopthelook.commands.scale import add_scheduler_arguments

    parser = argparse.ArgumentParser()
    add_scheduler_arguments(parser)
    assert parser.parse_args([]).scheduler is None  # in this process, as before
    assert parser.parse_args(["--scheduler"]).scheduler == "local"
    args = parser.parse_args(["--scheduler", "tcp://head:8786", "--partition-size", "64"])
    assert (args.scheduler, args.partition_size) == ("tcp://head:8786", 64)
