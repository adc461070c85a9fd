"""Detector speed and coverage on the IKEA rooms.

Latency: median / p95 of YoloDetector.detect over ``--rooms`` room photos (already decoded,
so image reading is not counted), torch at ``--threads`` threads, the first call excluded as
warm-up. Coverage: of the IKEA ground-truth (room, product) pairs, the share whose product
category (by the taxonomy) is one a detector label searches, and the share for which the room
also has a detection of a label that searches that category (an upper bound on what
shop-the-look can find through detected boxes).

    .venv/bin/python benchmarks/bench_detector.py --rooms 30 --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector.yolo import YoloDetector  # noqa: E402
from shopthelook.core.config import load_settings  # noqa: E402
from shopthelook.core.images import load_image  # noqa: E402
from shopthelook.core.taxonomy import load_taxonomy  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", help="folder holding ikea/ (default: settings.data_root)")
    parser.add_argument("--weights", help="YOLO weights (default: settings.detector_weights)")
    parser.add_argument("--rooms", type=int, default=30, help="rooms timed (default 30)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--confidence", type=float, default=None)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument(
        "--coverage-rooms", type=int, default=0, help="rooms for coverage (0 = every room)"
    )
    parser.add_argument("--skip-coverage", action="store_true", help="time only")
    args = parser.parse_args(argv)

    settings = load_settings()
    data_root = Path(args.data_root or settings.data_root or "../shared/data")
    ikea = data_root / "ikea"
    if not (ikea / "rooms.csv").exists():
        print(f"no IKEA data at {ikea}: give --data-root", file=sys.stderr)
        return 2
    taxonomy = load_taxonomy(settings.taxonomy)
    t0 = time.perf_counter()
    detector = YoloDetector(
        args.weights or settings.detector_weights,
        taxonomy,
        confidence=args.confidence or settings.detection_confidence,
        iou=settings.detection_iou,
        image_size=args.image_size or settings.detection_image_size,
        max_objects=settings.max_objects,
        threads=args.threads,
    )
    load_s = time.perf_counter() - t0

    rooms = pd.read_csv(ikea / "rooms.csv")
    pairs = pd.read_csv(ikea / "room_products.csv", dtype=str)
    products = pd.read_csv(ikea / "products.csv", dtype={"product_id": str})
    products["category"] = taxonomy.categorize_table(products)

    print(f"machine: {platform.machine()} {os.cpu_count()} cores, load {_load()}")
    print(f"detector: {detector!r}, loaded in {load_s:.2f} s")

    # -- latency --------------------------------------------------------------------------
    timed = rooms.head(args.rooms + 1)  # +1: the warm-up call
    images = [load_image(ikea / p) for p in timed["image"]]
    latencies = []
    for i, image in enumerate(images):
        t = time.perf_counter()
        detector.detect(image)
        if i > 0:
            latencies.append(time.perf_counter() - t)
    ms = np.array(latencies) * 1000
    print(
        f"latency over {len(ms)} rooms (first call excluded), {args.threads} torch threads: "
        f"median {np.median(ms):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, "
        f"mean {ms.mean():.1f} ms, min {ms.min():.1f} ms, max {ms.max():.1f} ms"
    )

    if args.skip_coverage:
        print(f"load at the end: {_load()}")
        return 0

    # -- coverage -------------------------------------------------------------------------
    cov_rooms = rooms if args.coverage_rooms <= 0 else rooms.head(args.coverage_rooms)
    searched: dict[str, set[str]] = {}
    n_objects = []
    for room_id, image_path in zip(cov_rooms["room_id"], cov_rooms["image"], strict=True):
        dets = detector.detect(load_image(ikea / image_path))
        n_objects.append(len(dets))
        searched[room_id] = {c for d in dets for c in d.search_categories}
    gt = pairs.merge(products[["product_id", "category"]], on="product_id", how="left")
    gt = gt[gt["room_id"].isin(searched)]
    gt["detectable"] = gt["category"].map(
        lambda c: isinstance(c, str) and taxonomy.is_detectable(c)
    )
    gt["covered"] = [
        det and cat in searched[room]
        for room, cat, det in zip(gt["room_id"], gt["category"], gt["detectable"], strict=True)
    ]
    n = len(gt)
    n_det, n_cov = int(gt["detectable"].sum()), int(gt["covered"].sum())
    print(
        f"coverage over {len(searched)} rooms, {n} ground-truth pairs "
        f"({statistics.mean(n_objects):.1f} objects per room): "
        f"detectable category {n_det} ({n_det / n:.1%}); covered by a detection "
        f"{n_cov} ({n_cov / n:.1%} of all pairs, {n_cov / max(n_det, 1):.1%} of detectable)"
    )
    by_cat = gt[gt["detectable"]].groupby("category")["covered"].agg(["sum", "count"])
    by_cat = by_cat.sort_values("count", ascending=False)
    print(
        "per detectable category (covered/pairs): "
        + ", ".join(f"{c} {int(r['sum'])}/{int(r['count'])}" for c, r in by_cat.iterrows())
    )
    missing = Counter(gt.loc[~gt["detectable"], "category"].fillna("unknown product"))
    print(
        "pairs of undetectable categories: "
        + ", ".join(f"{c} {k}" for c, k in missing.most_common(10))
    )
    print(f"load at the end: {_load()}")
    return 0


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


if __name__ == "__main__":
    raise SystemExit(main())
