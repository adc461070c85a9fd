"""Scale benchmark: per-category ANN indexes at up to 1M products, and the Dask match job.

    # indexes: real embeddings of built catalogs, replicated with small noise to --n products
    python benchmarks/bench_scale.py index --catalogs catalogs/ikea-hvf catalogs/hm-hvf \\
        --n 1000000 --categories 20 --kind auto --queries 1000 --add 1000

    # match throughput on a LocalCluster with 1 and 2 worker processes (real YOLO + hvf)
    python benchmarks/bench_scale.py match --catalog catalogs/ikea-hvf --scenes ikea \\
        --n-scenes 48 --workers 1 2 --partition-size 8

    # the scheduling cost of one partition (a task that does nothing)
    python benchmarks/bench_scale.py overhead --workers 2 --partitions 200

    # Catalog.add of 1,000 real products (their photos embedded with hvf again) into a 1M catalog, saved
    python benchmarks/bench_scale.py catalog-add --catalogs catalogs/ikea-hvf catalogs/hm-hvf \\
        --n 1000000 --add 1000 --out /tmp/bench_scale_catalog

Every number printed is a median (or a percentile) over repeated measurements; nothing here
asserts a speed. The machine it runs on, and what else ran, belong next to the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


# -- synthetic catalog from real embeddings -----------------------------------------------
def replicated_catalog(catalogs, n, categories, noise, seed=0):
    """Real vectors of the largest categories, copied with Gaussian noise (L2 norm ~ ``noise``)
    to ``n`` products in all; each category keeps its real share. Returns the vectors, the
    category of each, the source row of each (for fresh queries) and the real vectors."""
    import pandas as pd

    vectors, cats = [], []
    for folder in catalogs:
        vectors.append(np.load(Path(folder) / "embeddings.npy"))
        cats.extend(pd.read_parquet(Path(folder) / "products.parquet")["category"].astype(str))
    real, cats = np.concatenate(vectors).astype(np.float32), np.array(cats)
    names, counts = np.unique(cats, return_counts=True)
    keep = names[np.argsort(-counts)][:categories]
    mask = np.isin(cats, keep)
    real, cats = real[mask], cats[mask]
    rng = np.random.default_rng(seed)
    source = np.concatenate([np.arange(len(real))] * (n // len(real) + 1))[:n]
    rng.shuffle(source)
    out = noisy(real[source], noise, rng)
    return out, cats[source], source, real, cats


def noisy(x, noise, rng):
    import faiss

    scale = float(noise / np.sqrt(x.shape[1]))
    x = np.ascontiguousarray(x + rng.standard_normal(size=x.shape, dtype=np.float32) * scale)
    faiss.normalize_L2(x)
    return x


def percentiles(values):
    values = np.asarray(values) * 1e3
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 4),
        "p95_ms": round(float(np.percentile(values, 95)), 4),
    }


def cmd_index(args) -> dict:
    import faiss

    from catalog import ann

    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(1)
    t = time.perf_counter()
    x, cats, source, real, real_cats = replicated_catalog(
        args.catalogs, args.n, args.categories, args.noise
    )
    ids = np.arange(len(x), dtype=np.int64)
    print(
        f"{len(x)} vectors ({x.shape[1]}-d) over {len(set(cats))} categories from "
        f"{len(real)} real ones, noise {args.noise} ({time.perf_counter() - t:.1f} s)"
    )
    options = ann.IndexOptions(
        exact_max=args.exact_max,
        kind=args.kind,
        target_recall=args.target_recall,
        refine=args.refine,
    )
    # ids are row numbers, so the catalog's stored vectors re-score by plain indexing (as
    # Catalog._rescore does); room for the products --add appends later
    store = np.empty((len(x) + args.add, x.shape[1]), np.float32)
    store[: len(x)] = x
    x = store[: len(x)]
    lookup = store.__getitem__ if args.refine > 1 else None
    rescorers = {}
    indexes, specs, rows_of = {}, {}, {}
    started = time.perf_counter()
    for cat in sorted(set(cats)):
        rows = np.flatnonzero(cats == cat)
        rows_of[cat] = rows
        rescorers[cat] = lookup
        indexes[cat], specs[cat] = ann.build_index(
            x[rows], ids[rows], options=options, rescore=lookup
        )
    build_s = time.perf_counter() - started
    index_bytes = sum(ann.index_bytes(i) for i in indexes.values())
    kinds = {}
    for spec in specs.values():
        kinds[spec.kind] = kinds.get(spec.kind, 0) + 1

    # fresh queries: new noisy copies of real products, spread like the catalog
    pick = rng.choice(len(real), args.queries, replace=True)
    queries, qcats = noisy(real[pick], args.noise, rng), real_cats[pick]
    exact = {c: faiss.IndexFlatIP(x.shape[1]) for c in indexes}
    for c, index in exact.items():
        index.add(x[rows_of[c]])
    hits, single, single_cpu, single_exact = [], [], [], []
    for q, c in zip(queries, qcats, strict=True):
        q = q[None]
        t, cpu = time.perf_counter(), time.thread_time()
        found = ann.search(indexes[c], specs[c], q, 10, rescore=rescorers[c])[1][0]
        single.append(time.perf_counter() - t)
        single_cpu.append(time.thread_time() - cpu)  # what a core of its own would take
        t = time.perf_counter()
        truth = rows_of[c][exact[c].search(q, 10)[1][0]]
        single_exact.append(time.perf_counter() - t)
        hits.append(len(set(found.tolist()) & set(truth.tolist())) / 10)
    batched = []
    for c in indexes:
        mine = queries[qcats == c]
        if len(mine):
            t = time.perf_counter()
            ann.search(indexes[c], specs[c], mine, 10, rescore=rescorers[c])
            batched.append((time.perf_counter() - t) / len(mine))
    result = {
        "n": int(len(x)),
        "dim": int(x.shape[1]),
        "categories": len(indexes),
        "kinds": kinds,
        "noise": args.noise,
        "threads": args.threads,
        "exact_max": args.exact_max,
        "build_s": round(build_s, 1),
        "index_mb": round(index_bytes / 2**20, 1),
        "raw_float32_mb": round(x.nbytes / 2**20, 1),
        "recall_at_10": round(float(np.mean(hits)), 4),
        "single_query": percentiles(single),
        "single_query_cpu_time": percentiles(single_cpu),
        "exact_single_query": percentiles(single_exact),
        "batched_ms_per_query_median": round(float(np.median(batched)) * 1e3, 4),
        "tuned": {
            c: {
                "kind": s.kind,
                "n": s.n,
                **{k: v for k, v in s.params.items()},
                "tuning_recall": s.recall,
            }
            for c, s in specs.items()
        },
    }
    if args.add:
        result["add"] = bench_add(
            args, ann, store, cats, real, real_cats, indexes, specs, rescorers, rng
        )
    return result


def bench_add(args, ann, store, cats, real, real_cats, indexes, specs, rescorers, rng):
    """Add --add products to the built indexes; other products' results must not move."""
    x = store[: len(cats)]
    probe_rows = rng.choice(len(x), 500, replace=False)
    before = {
        r: ann.search(indexes[cats[r]], specs[cats[r]], x[r][None], 10, rescore=rescorers[cats[r]])[
            1
        ][0]
        for r in probe_rows
    }
    pick = rng.choice(len(real), args.add)
    new_x, new_cats = noisy(real[pick], args.noise, rng), real_cats[pick]
    new_ids = np.arange(len(x), len(x) + args.add, dtype=np.int64)
    t = time.perf_counter()
    store[len(x) :] = new_x  # the catalog appends the new embeddings
    for c in set(new_cats):
        mine = new_cats == c
        ann.add_vectors(indexes[c], specs[c], new_x[mine], new_ids[mine])
    add_s = time.perf_counter() - t
    changed = 0
    new = set(new_ids.tolist())
    for r, old in before.items():
        now = ann.search(
            indexes[cats[r]], specs[cats[r]], x[r][None], 10, rescore=rescorers[cats[r]]
        )[1][0]
        kept = [i for i in now.tolist() if i not in new]
        changed += kept != old.tolist()[: len(kept)]
    return {
        "added": args.add,
        "seconds": round(add_s, 3),
        "probes": len(before),
        "probes_whose_old_results_moved": changed,
    }


# -- Catalog.add into a big catalog ---------------------------------------------------
def cmd_catalog_add(args) -> dict:
    import pandas as pd

    from catalog import FORMAT_VERSION, Catalog
    from embedder import create_embedder
    from shopthelook.core.config import load_settings

    settings = load_settings(backbone="hvf")
    embedder = create_embedder(settings)
    x, cats, _, _, _ = replicated_catalog(args.catalogs, args.n, args.categories, args.noise)
    products = pd.DataFrame(
        {
            "product_id": [f"R{i:07d}" for i in range(len(x))],
            "image": "",
            "category": cats,
            "name": None,
            "row_id": np.arange(len(x), dtype=np.int64),
        }
    )
    manifest = {
        "format_version": FORMAT_VERSION,
        "backbone": embedder.name,
        "head": embedder.head_id,
        "dim": embedder.dim,
        "next_row_id": len(x),
        "exact_index_max": args.exact_max,
        "failures": [],
        "source_hash": "bench",
    }
    t = time.perf_counter()
    catalog = Catalog._assemble(products, x, manifest)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    catalog.save(args.out)
    save_s = time.perf_counter() - t
    t = time.perf_counter()
    catalog = Catalog.load(args.out)
    load_s = time.perf_counter() - t
    rng = np.random.default_rng(2)
    probes = [f"R{i:07d}" for i in rng.choice(len(x), 300, replace=False)]
    before = {
        p: [
            h
            for h, _ in catalog.search(catalog.embeddings([p]), catalog.product(p)["category"], 10)[
                0
            ]
        ]
        for p in probes
    }
    new = pd.concat([pd.read_parquet(Path(c) / "products.parquet") for c in args.catalogs])
    new = new[new["category"].isin(set(cats))][["image", "category", "name"]]
    new = new.sample(min(args.add, len(new)), random_state=0).reset_index(drop=True)
    new["product_id"] = [f"NEW{i:05d}" for i in range(len(new))]
    t = time.perf_counter()
    result = catalog.add(new, embedder=embedder, settings=settings)
    add_s = time.perf_counter() - t
    moved, moved_recall = 0, []
    products = catalog.products
    for p, old in before.items():
        category = catalog.product(p)["category"]
        query = catalog.embeddings([p])
        now = [h for h, _ in catalog.search(query, category, 10)[0]]
        kept = [h for h in now if not h.startswith("NEW")]
        if kept != old[: len(kept)]:
            moved += 1
            rows = np.flatnonzero(products["category"].to_numpy() == category)
            exact = rows[np.argsort(-(catalog.vectors[rows] @ query[0]))[:10]]
            truth = set(products["product_id"].to_numpy()[exact])
            moved_recall.append(len(truth & set(now)) / 10)
    return {
        "n": len(x),
        "assemble_s": round(build_s, 1),
        "save_s": round(save_s, 1),
        "load_s": round(load_s, 1),
        "added": result["added"],
        "add_s_total": round(add_s, 1),
        "probes": len(probes),
        "probes_whose_old_results_moved": moved,
        "their_recall_at_10_after_the_add": moved_recall,
        "kinds": sorted(set(catalog.manifest["index"].values())),
    }


# -- Dask --------------------------------------------------------------------------------
def cmd_match(args) -> dict:
    from shopthelook.core.config import load_settings
    from shopthelook.core.datasets import load_scenes
    from shopthelook.dask_jobs import MatchPipelineSpec, distributed_match
    from shopthelook.distributed import dask_client

    settings = load_settings()
    scenes = load_scenes(args.scenes, data_root=settings.data_root).head(args.n_scenes)
    spec = MatchPipelineSpec(str(args.catalog), settings)
    out = {"scenes": len(scenes), "partition_size": args.partition_size, "runs": {}}
    for workers in args.workers:
        with dask_client(f"local:{workers}", dashboard=False) as client:
            client.submit(lambda: None).result()  # workers up before the clock starts
            target = Path(args.work) / f"match-{workers}w.jsonl"
            target.unlink(missing_ok=True)
            summary, report = distributed_match(
                client, spec, scenes, target, top_k=10, partition_size=args.partition_size
            )
            stats = list(report.results.values())
            out["runs"][workers] = {
                "wall_s": round(report.seconds, 1),
                "scenes_per_s": round(summary.processed / report.seconds, 3),
                "model_load_s_per_worker": round(max(s["load_seconds"] for s in stats), 1),
                "work_s_per_scene": round(
                    sum(s["work_seconds"] for s in stats) / max(1, summary.processed), 3
                ),
                "cpu_s_per_scene": round(
                    sum(s["cpu_seconds"] for s in stats) / max(1, summary.processed), 3
                ),
                "failed_partitions": len(report.failed),
            }
            print(workers, out["runs"][workers], flush=True)
    return out


def _noop(job_dir, part):
    return {"n": part.number}


def cmd_overhead(args) -> dict:
    from shopthelook.distributed import Partition, dask_client, run_partitions

    with dask_client(f"local:{args.workers}", dashboard=False) as client:
        client.submit(lambda: None).result()
        parts = [Partition(i, f"noop-{i}", None) for i in range(args.partitions)]
        runs = []
        for _ in range(3):
            report = run_partitions(client, _noop, parts, Path(args.work), done=lambda p: False)
            runs.append(report.seconds / len(parts))
    return {
        "workers": args.workers,
        "partitions": args.partitions,
        "ms_per_partition_median": round(float(np.median(runs)) * 1e3, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("index")
    p.add_argument("--catalogs", nargs="+", required=True)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--categories", type=int, default=20)
    p.add_argument("--noise", type=float, default=0.08, help="L2 norm of the noise per copy")
    p.add_argument("--kind", default="auto")
    p.add_argument("--exact-max", type=int, default=20_000)
    p.add_argument("--target-recall", type=float, default=0.95)
    p.add_argument("--refine", type=int, default=4, help="first refine the tuning tries (4)")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--add", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    m = sub.add_parser("match")
    m.add_argument("--catalog", required=True)
    m.add_argument("--scenes", default="ikea")
    m.add_argument("--n-scenes", type=int, default=48)
    m.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    m.add_argument("--partition-size", type=int, default=8)
    m.add_argument("--work", default="/tmp/bench_scale")
    a = sub.add_parser("catalog-add")
    a.add_argument("--catalogs", nargs="+", required=True)
    a.add_argument("--n", type=int, default=100_000)
    a.add_argument("--categories", type=int, default=20)
    a.add_argument("--noise", type=float, default=0.08)
    a.add_argument("--exact-max", type=int, default=20_000)
    a.add_argument("--add", type=int, default=1000)
    a.add_argument("--out", default="/tmp/bench_scale_catalog")
    o = sub.add_parser("overhead")
    o.add_argument("--workers", type=int, default=2)
    o.add_argument("--partitions", type=int, default=200)
    o.add_argument("--work", default="/tmp/bench_scale_noop")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()
    Path(getattr(args, "work", "/tmp")).mkdir(parents=True, exist_ok=True)
    commands = {
        "index": cmd_index,
        "match": cmd_match,
        "overhead": cmd_overhead,
        "catalog-add": cmd_catalog_add,
    }
    result = commands[args.what](args)
    result["load_average_1_5_15"] = [round(v, 1) for v in os.getloadavg()]
    result["cpus"] = os.cpu_count()
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
