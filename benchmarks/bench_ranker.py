"""Prediction time of the LightGBM re-ranker for 200 FAISS candidates (target <= 5 ms).

Loads a trained model folder (by default the H&M one eval_hm.py writes), takes real users
and their FAISS candidates, and prints the median time of: feature building, LightGBM
predict, and the whole rank() call (features + predict + explanations of the top 10).
With --scene, also runs one IKEA room through the full pipeline with the ranker attached.

    .venv/bin/python benchmarks/bench_ranker.py
    .venv/bin/python benchmarks/bench_ranker.py --model artifacts/ranker-ikea-ikea-hvf \
        --events "" --scene
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from catalog import Catalog  # noqa: E402
from ranker.base import RankContext  # noqa: E402
from ranker.events import EventStore  # noqa: E402
from ranker.lgbm import LightGBMRanker, load_ranker  # noqa: E402
from shopthelook.core.config import apply_threads, default_shared_root  # noqa: E402
from shopthelook.core.types import Box, Detection, ProductHit  # noqa: E402


def median_ms(fn, repeat: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds (CPU time is the fairer number on a shared machine)."""
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return 1000 * statistics.median(wall), 1000 * statistics.median(cpu)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "artifacts" / "ranker-hm-hm-hvf"))
    ap.add_argument(
        "--events",
        default=str(ROOT / "artifacts" / "hm-events.db"),
        help="events store for live profiles ('' = the model's snapshot only)",
    )
    ap.add_argument("--candidates", type=int, default=200)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--scene", action="store_true", help="also time one IKEA room end to end")
    args = ap.parse_args()
    apply_threads(args.threads)

    events = EventStore(args.events) if args.events else None
    t = time.perf_counter()
    ranker = load_ranker(args.model, events=events)
    if not isinstance(ranker, LightGBMRanker):
        print(f"error: {ranker.fallback_reason}")
        return 1
    ranker.builder()  # reads the events once
    print(
        f"loaded {args.model} in {time.perf_counter() - t:.2f} s "
        f"({ranker.booster.num_trees()} trees, {len(ranker.space.ids)} products)"
    )
    space = ranker.space
    profiles = ranker.builder().profiles
    users = sorted(profiles.profiles)[: args.users] or [None]
    rng = np.random.default_rng(0)
    feat, pred, full = [], [], []
    for user in users:
        profile = profiles.get(user)
        query = (
            profile.centroid if profile.product_ids else space.vectors[rng.integers(len(space.ids))]
        )
        category = (
            space.category_of(profile.product_ids[0])
            if profile.product_ids
            else space.categories[0]
        )
        found = space.search(query[None, :], category, args.candidates)[0]
        hits = [ProductHit(pid, s, category) for pid, s in found]
        det = Detection(Box(0, 0, 10, 10), category, 1.0, category, (category,))
        ctx = RankContext(user_id=user, detection=det, query_embedding=query)
        builder = ranker.builder()
        X = builder.build(ctx, hits)
        feat.append(
            median_ms(lambda ctx=ctx, hits=hits, b=builder: b.build(ctx, hits), args.repeat)
        )
        pred.append(median_ms(lambda X=X: ranker.booster.predict(X), args.repeat))
        full.append(median_ms(lambda ctx=ctx, hits=hits: ranker.rank(ctx, list(hits)), args.repeat))
    n = len(hits)
    print(
        f"{n} candidates, {len(users)} users, median of {args.repeat} runs each, "
        f"{args.threads} thread(s):"
    )
    for label, runs in (("features", feat), ("predict", pred), ("rank()", full)):
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        print(f"  {label:<9} wall {wall:6.2f} ms   cpu {cpu:6.2f} ms")
    print("  rank() = features + predict + explanations of the top 10; target <= 5 ms")

    if args.scene:
        from shopthelook.pipeline import ShopTheLook

        catalog = Catalog.load(ranker.manifest["catalog"]["path"])
        pipe = ShopTheLook(catalog, ranker=load_ranker(args.model, catalog=catalog))
        ikea = default_shared_root() / "data" / "ikea"
        room = sorted((ikea / "rooms").glob("*.jpg"))[0]
        result = pipe.shop_the_look(room, top_k=5)
        print(
            f"pipeline on {room.name}: {len(result.objects)} objects, timings "
            + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in result.timings.items())
        )
        for obj in result.objects[:3]:
            first = obj.products[0] if obj.products else None
            print(
                f"  {obj.detection.label}: {first.product_id if first else '-'} "
                f"({first.reason if first else ''})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
