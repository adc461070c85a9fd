"""The Dask jobs: catalog matching, product embedding, and re-ranker training (lightgbm.dask).

Use them through ``shopthelook.distributed``, which holds the client, partition and cache helpers
they run on (see its docstring for the retry, resume and no-duplicates guarantees).
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shopthelook.batch import match_scene
from shopthelook.distributed import (
    JobReport,
    Partition,
    check_report,
    mark_attempt,
    run_partitions,
    split,
    stable_key,
    worker_cached,
    write_atomic,
)

log = logging.getLogger(__name__)


# -- match --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class MatchPipelineSpec:
    """What a worker needs to build the ShopTheLook pipeline once (same flags as `match`)."""

    catalog: str
    settings: Any = None  # shopthelook.core.config.Settings; None: load_settings()
    ranker: str | None = None
    directions: str | None = None
    backbone: str | None = None
    #: torch/faiss threads per worker process (one process per core is the usual layout)
    threads: int = 1

    def key(self) -> str:
        """Identifies the pipeline a worker caches: every field, a subclass's included."""
        return stable_key(type(self).__module__, type(self).__qualname__, dataclasses.asdict(self))

    def build(self):
        from catalog import Catalog
        from shopthelook.core.config import load_settings
        from shopthelook.pipeline import ShopTheLook

        settings = (self.settings or load_settings()).replace(threads=self.threads)
        catalog = Catalog.load(self.catalog, expected_backbone=self.backbone)
        ranker = directions = None
        if self.ranker:
            from ranker import load_ranker

            ranker = load_ranker(self.ranker, catalog=catalog)
        if self.directions:
            from embedder.oaar import load_directions

            directions = load_directions(self.directions)
        return ShopTheLook(
            catalog, settings, ranker=ranker, directions=directions, **self.pipeline_kwargs()
        )

    def pipeline_kwargs(self) -> dict[str, Any]:
        """Extra ShopTheLook arguments (a subclass may pass its own detector)."""
        return {}


def _match_partition(
    job_dir: str, part: Partition, spec: MatchPipelineSpec, top_k: int, adjective: str | None
) -> dict:
    mark_attempt(job_dir, part.name)
    t0 = time.perf_counter()
    pipeline = worker_cached(spec.key(), spec.build)
    t1, cpu = time.perf_counter(), time.process_time()
    lines, stats = [], {"scenes": 0, "failures": 0, "objects": 0, "with_objects": 0, "errors": []}
    for scene_id, image in part.payload:
        record, found = match_scene(pipeline, scene_id, image, top_k=top_k, adjective=adjective)
        lines.append(json.dumps(record))
        stats["scenes"] += 1
        if found < 0:
            stats["failures"] += 1
            stats["errors"].append(record["error"])
        else:
            stats["objects"] += found
            stats["with_objects"] += found > 0
    out = Path(job_dir) / "parts" / f"{part.name}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, lambda p: p.write_text("".join(line + "\n" for line in lines)))
    stats.update(
        load_seconds=t1 - t0,
        work_seconds=time.perf_counter() - t1,
        cpu_seconds=time.process_time() - cpu,
    )
    return stats


def merge_jsonl_parts(job_dir: Path, out: Path) -> int:
    """Append finished partition files to ``out``, skipping scenes already there; returns lines."""
    parts = sorted((job_dir / "parts").glob("part-*.jsonl")) if job_dir.exists() else []
    if not parts:
        return 0
    from shopthelook.batch import read_done

    done = read_done(out, retry_failed=False)
    added = 0
    with out.open("a") as fh:
        for part in parts:
            for line in part.read_text().splitlines():
                scene_id = str(json.loads(line).get("scene_id"))
                if scene_id not in done:
                    fh.write(line + "\n")
                    done.add(scene_id)
                    added += 1
            fh.flush()
            # the lines are on disk before the part goes, so a crash here loses nothing
            os.fsync(fh.fileno())
            part.unlink()
    return added


def distributed_match(
    client,
    spec: MatchPipelineSpec,
    scenes: pd.DataFrame,
    out: str | Path,
    *,
    top_k: int = 10,
    adjective: str | None = None,
    retry_failed: bool = False,
    partition_size: int = 32,
    retries: int = 2,
    show_progress: bool = False,
):
    """The `match` job on Dask; returns (batch.MatchSummary, JobReport). Same output file format
    and resume rule as shopthelook.batch.run_match: scenes with a line in ``out`` are skipped."""
    from shopthelook.batch import MatchSummary, failed_in, read_done

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    job_dir = out.parent / f".{out.name}.parts"
    salvaged = merge_jsonl_parts(job_dir, out)  # partitions finished by a stopped run
    if salvaged:
        log.warning("kept %d scene(s) finished by an earlier, stopped run", salvaged)
    done = read_done(out, retry_failed)
    todo = scenes[~scenes["scene_id"].astype(str).isin(done)]
    run = time.strftime("%Y%m%d%H%M%S")
    pairs = [(str(s), str(i)) for s, i in zip(todo["scene_id"], todo["image"], strict=True)]
    partitions = [
        Partition(n, f"part-{run}-{n:05d}", chunk)
        for n, chunk in enumerate(split(pairs, partition_size))
    ]
    summary = MatchSummary(scenes=len(scenes), skipped=len(scenes) - len(todo))
    summary.earlier_failures = len(failed_in(out) & set(scenes["scene_id"].astype(str)))
    report = run_partitions(
        client,
        _match_partition,
        partitions,
        job_dir,
        args=(spec, top_k, adjective),
        done=lambda p: (job_dir / "parts" / f"{p.name}.jsonl").exists(),
        retries=retries,
        show_progress=show_progress,
        desc="matching scenes",
    )
    merge_jsonl_parts(job_dir, out)
    for stats in report.results.values():
        summary.processed += stats["scenes"]
        summary.failures += stats["failures"]
        summary.objects += stats["objects"]
        summary.scenes_with_objects += stats["with_objects"]
        summary.errors.extend(stats["errors"])
    summary.seconds = report.seconds
    if not report.failed:
        shutil.rmtree(job_dir, ignore_errors=True)
    return summary, report


# -- embed products -----------------------------------------------------------------------
def _embed_partition(job_dir: str, part: Partition, settings) -> dict:
    from catalog import embed_products
    from embedder import create_embedder
    from shopthelook.core.config import apply_threads

    mark_attempt(job_dir, part.name)
    start, paths = part.payload
    key = stable_key("embedder", settings.backbone, settings.head)
    embedder = worker_cached(key, lambda: create_embedder(settings))
    apply_threads(settings.threads)
    t = time.perf_counter()
    vectors, ok, failures = embed_products(paths, embedder, settings=settings)
    out = Path(job_dir) / "parts" / f"{part.name}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        buffer = io.BytesIO()
        np.savez(
            buffer,
            vectors=vectors,
            ok=np.asarray(ok, np.int64) + start,
            failures=np.array(json.dumps(failures)),
        )
        tmp.write_bytes(buffer.getvalue())

    write_atomic(out, write)
    return {"images": len(paths), "failures": len(failures), "seconds": time.perf_counter() - t}


def distributed_embed_products(
    client,
    image_paths: Sequence[str],
    *,
    settings,
    work_dir: str | Path,
    partition_size: int = 256,
    retries: int = 2,
    show_progress: bool = False,
) -> tuple[np.ndarray, list[int], list[dict[str, str]]]:
    """catalog.embed_products on Dask: same return value (vectors, ok rows, failures).

    Finished partitions stay in ``work_dir/embed-<hash of the inputs>`` until the whole job is
    merged, so a stopped build started again embeds only what is left.
    """
    settings = settings.replace(threads=1)
    paths = [str(p) for p in image_paths]
    signature = stable_key(
        paths, settings.backbone, settings.head, partition_size, settings.max_image_pixels
    )
    job_dir = Path(work_dir) / f"embed-{signature}"
    partitions = [
        Partition(n, f"part-{n:05d}", (n * partition_size, chunk))
        for n, chunk in enumerate(split(paths, partition_size))
    ]
    report = run_partitions(
        client,
        _embed_partition,
        partitions,
        job_dir,
        args=(settings,),
        done=lambda p: (job_dir / "parts" / f"{p.name}.npz").exists(),
        retries=retries,
        show_progress=show_progress,
        desc="embedding products",
    )
    for line in report.lines():
        log.info(line)
    check_report(report, "embedding products")
    vectors, ok, failures = [], [], []
    for part in partitions:
        with np.load(job_dir / "parts" / f"{part.name}.npz") as data:
            vectors.append(data["vectors"])
            ok.extend(int(i) for i in data["ok"])
            failures.extend(json.loads(str(data["failures"])))
    shutil.rmtree(job_dir, ignore_errors=True)
    dim = next((v.shape[1] for v in vectors if v.ndim == 2 and len(v)), 0)
    merged = (
        np.concatenate([v for v in vectors if len(v)]) if ok else np.zeros((0, dim), np.float32)
    )
    return merged.astype(np.float32, copy=False), ok, failures


# -- re-ranker training -------------------------------------------------------------------
def _group_chunks(sizes: np.ndarray, parts: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Row and group chunk sizes with every query group inside one chunk."""
    groups = np.array_split(np.arange(len(sizes)), max(1, min(parts, len(sizes))))
    group_chunks = tuple(len(g) for g in groups if len(g))
    row_chunks = tuple(int(sizes[g].sum()) for g in groups if len(g))
    return row_chunks, group_chunks


def _dask_rows(values, sizes, parts: int):
    """One value per row, chunked like ``_dask_arrays`` chunks y."""
    import dask.array as da

    rows, _ = _group_chunks(np.asarray(sizes), parts)
    return da.from_array(np.asarray(values), chunks=(rows,))


def _dask_arrays(X, y, sizes, parts: int):
    import dask.array as da

    rows, groups = _group_chunks(np.asarray(sizes), parts)
    return (
        da.from_array(np.asarray(X, np.float32), chunks=(rows, X.shape[1])),
        da.from_array(np.asarray(y), chunks=(rows,)),
        da.from_array(np.asarray(sizes, np.int64), chunks=(groups,)),
    )


def distributed_train_ranker(
    client,
    X: np.ndarray,
    y: np.ndarray,
    sizes: np.ndarray,
    valid: tuple | None,
    config,
    prior=None,
) -> tuple[Any, dict]:
    """ranker.train.fit on a Dask cluster with lightgbm.dask (same arguments and return).

    lightgbm.dask has no early stopping, so every round is trained and the best validation
    round is chosen afterwards (``booster.best_iteration``), which saving and predicting honour.
    """
    from lightgbm.dask import DaskLGBMRanker

    from ranker.features import CATEGORICAL, FEATURES

    workers = max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))
    params = {
        "objective": "lambdarank",
        "n_estimators": config.n_estimators,
        "num_leaves": config.num_leaves,
        "learning_rate": config.learning_rate,
        "min_child_samples": config.min_data_in_leaf,
        "colsample_bytree": config.feature_fraction,
        "subsample": config.bagging_fraction,
        "subsample_freq": 1 if config.bagging_fraction < 1.0 else 0,
        "random_state": config.seed,
        "deterministic": True,
        "verbose": -1,
        "lambdarank_truncation_level": 20,
        "tree_learner": "data",
    }
    fit_kwargs: dict[str, Any] = {
        "feature_name": list(FEATURES),
        "categorical_feature": [FEATURES.index(c) for c in CATEGORICAL],
    }
    # A column that is NaN in every training row crashes the workers (SIGSEGV while they agree
    # on feature bins; seen with lightgbm 4.7). Such a feature can never be split on, so a
    # constant in its place trains the same trees.
    dead = np.isnan(X).all(axis=0) if len(X) else np.zeros(X.shape[1], bool)
    if dead.any():
        X = np.where(dead, np.float32(0), X)
        if valid is not None:
            valid = (np.where(dead, np.float32(0), valid[0]), *valid[1:])
    if prior is None and getattr(config, "prior_feature", None):
        from ranker.train import make_prior

        prior = make_prior(X, sizes, config)
    Xd, yd, gd = _dask_arrays(X, y, sizes, workers)
    if prior is not None:
        # the same chunks as y: the prior is one score per row
        fit_kwargs["init_score"] = _dask_rows(prior.scores(X), sizes, workers)
    if valid is not None and len(valid[2]):
        Xv, yv, gv = _dask_arrays(*valid, workers)
        fit_kwargs.update(eval_X=(Xv,), eval_y=(yv,), eval_group=[gv], eval_at=[10])
        if prior is not None:
            fit_kwargs["eval_init_score"] = [_dask_rows(prior.scores(valid[0]), valid[2], workers)]
    started = time.perf_counter()
    with warnings.catch_warnings():  # lightgbm.dask sets threads per worker itself
        warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
        # the feature matrix is built on this machine and shipped once; that is the design
        warnings.filterwarnings("ignore", message="Large object of size")
        model = DaskLGBMRanker(client=client, **params).fit(Xd, yd, group=gd, **fit_kwargs)
    booster = model.booster_
    curve = (getattr(model, "evals_result_", None) or {}).get("valid_0", {}).get("ndcg@10")
    booster.best_iteration = int(np.argmax(curve)) + 1 if curve else booster.current_iteration()
    info = {
        "train_seconds": round(time.perf_counter() - started, 2),
        "best_iteration": int(booster.best_iteration),
        "train_rows": int(len(y)),
        "train_groups": int(len(sizes)),
        "params": params,
        "dask_workers": workers,
        "constant_nan_features": [FEATURES[i] for i in np.flatnonzero(dead)],
        "prior": None if prior is None else prior.to_dict(),
    }
    return booster, info


__all__ = [
    "JobReport",
    "MatchPipelineSpec",
    "distributed_embed_products",
    "distributed_match",
    "distributed_train_ranker",
    "merge_jsonl_parts",
]
