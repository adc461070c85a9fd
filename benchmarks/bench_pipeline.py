"""Speed of the foundation: per-scene latency of shop_the_look and catalog build throughput.

Prints medians (and p95) on this machine with torch at ``--threads`` threads:
  * per-scene latency over the IKEA rooms: total and per stage (load, detect, embed, search, rank);
  * catalog build throughput (products/s) for the backbone over N IKEA products;
  * peak resident memory of the process.
Targets: p50 <= 150 ms per scene with the default backbone; >= 60 products/s to build.

    .venv/bin/python benchmarks/bench_pipeline.py --backbone yolo --scenes 60 --products 300
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", help="default: the settings' backbone")
    parser.add_argument(
        "--catalog", help="an existing catalog to search (default: build one from --products)"
    )
    parser.add_argument(
        "--products", type=int, default=300, help="IKEA products to build the catalog from"
    )
    parser.add_argument("--scenes", type=int, default=60, help="IKEA rooms to time")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top-k", type=int, default=10)
    args = parser.parse_args()

    from catalog import Catalog
    from embedder import create_embedder
    from shopthelook.core.config import apply_threads, load_settings
    from shopthelook.core.datasets import load_products, load_scenes
    from shopthelook.core.taxonomy import load_taxonomy
    from shopthelook.pipeline import ShopTheLook

    settings = load_settings(backbone=args.backbone, threads=args.threads)
    apply_threads(args.threads)
    embedder = create_embedder(settings)
    print(f"backbone {embedder.name} ({embedder.dim}-d), torch threads {args.threads}")

    # catalog build throughput (a fresh build of N products; the warm-up batch is excluded)
    products = load_products("ikea", data_root=settings.data_root)
    sample = products.sample(n=min(args.products, len(products)), random_state=0)
    embedder.embed_images(sample["image"].head(8).tolist())  # warm-up: weights, kernels
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        built = Catalog.build(
            sample,
            embedder=embedder,
            taxonomy=load_taxonomy(),
            out=Path(tmp) / "cat",
            settings=settings,
        )
        seconds = time.perf_counter() - t
    print(
        f"catalog build: {len(built)} products in {seconds:.1f} s = {len(built) / seconds:.1f} products/s "
        f"(target >= 60)"
    )

    catalog = Catalog.load(args.catalog) if args.catalog else built
    pipe = ShopTheLook(catalog, settings, embedder=embedder)
    scenes = load_scenes("ikea", data_root=settings.data_root).head(args.scenes + 1)
    pipe.shop_the_look(scenes["image"].iloc[0], top_k=args.top_k)  # warm-up
    totals, stages, objects = [], {}, []
    for image in scenes["image"].iloc[1:]:
        t = time.perf_counter()
        result = pipe.shop_the_look(image, top_k=args.top_k)
        totals.append(time.perf_counter() - t)
        objects.append(len(result.objects))
        for stage, s in result.timings.items():
            stages.setdefault(stage, []).append(s)
    ms = np.array(totals) * 1000
    print(
        f"shop_the_look over {len(ms)} IKEA rooms: p50 {np.median(ms):.0f} ms, "
        f"p95 {np.percentile(ms, 95):.0f} ms (target p50 <= 150 ms); "
        f"{np.mean(objects):.1f} objects/scene"
    )
    for stage, values in stages.items():
        v = np.array(values) * 1000
        print(f"  {stage:<7} p50 {np.median(v):7.1f} ms   p95 {np.percentile(v, 95):7.1f} ms")
    per_crop = np.array(stages["embed"]) / np.maximum(1, np.array(objects))
    print(f"  embed per crop p50 {np.median(per_crop) * 1000:.1f} ms")
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
