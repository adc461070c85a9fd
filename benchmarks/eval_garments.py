"""Garments inside a person, measured on held-out fashion photos (issue 12, item 5).

The garment classifier is fitted on the *training* groups of the catalog only (H&M: by a
stable hash of product_code, so colour variants never straddle the split; clothing: by
image id). Evaluation photos: held-out photos in which the COCO detector (the pipeline's
settings) finds a person; their own category is the article's.

- coverage: share of those photos with an object of the photo's own category (today: the
  person object, which searches every garment category, counts when its categories hold it);
- precision: share of (object, searched category) pairs that are the photo's own category
  (a lower bound: the other garments a model wears are real but unlabelled);
- top-1 precision: the photo's highest-scoring garment object has its own category;
- look-recall@10 (H&M): some object's top 10 holds another colour variant of the photo's
  product (same product_code, never the photo itself), over photos whose product has one.

    .venv/bin/python benchmarks/eval_garments.py --catalog catalogs/hm-effnet-lite0 --dataset hm

YOLO runs once per photo and is cached under test-artifacts/garments/ (``--scan``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from catalog import Catalog  # noqa: E402
from catalog.taught.garment_files import (  # noqa: E402
    GarmentFit,
    catalog_embed,
    fit_garments,
    group_column,
    product_split,
)
from catalog.taught.garments import GarmentDetector, GarmentSettings  # noqa: E402
from detector.base import Detector  # noqa: E402
from shopthelook.core.config import load_settings  # noqa: E402
from shopthelook.core.images import crop, load_image  # noqa: E402
from shopthelook.core.taxonomy import load_taxonomy  # noqa: E402
from shopthelook.core.types import Box, Detection  # noqa: E402

CACHE = REPO / "test-artifacts" / "garments"


class Cached(Detector):
    """The COCO detector's objects of one photo, from the scan cache."""

    name = "cached"

    def __init__(self, taxonomy):
        self.taxonomy, self.current = taxonomy, []

    def detect(self, image):
        return list(self.current)


def scan(catalog, dataset: str, taxonomy, settings, path: Path) -> dict[str, list[Detection]]:
    """YOLO detections of every held-out photo (cached as JSON lines)."""
    from detector.yolo import YoloDetector

    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            done[r["product_id"]] = r["dets"]
    products = catalog.products[product_split(catalog.products) == "heldout"]
    todo = [(p, i) for p, i in zip(products["product_id"], products["image"]) if str(p) not in done]
    if todo:
        yolo = YoloDetector(settings.detector_weights, taxonomy, threads=settings.threads)
        with path.open("a") as f:
            for pid, image in todo:
                found = yolo.detect(load_image(image))
                dets = [[d.label, round(d.score, 4), d.box.as_list()] for d in found]
                done[str(pid)] = dets
                f.write(json.dumps({"product_id": str(pid), "dets": dets}) + "\n")
    out = {}
    for pid, dets in done.items():
        out[pid] = [
            Detection(
                Box(*box),
                label,
                score,
                taxonomy.category_for_label(label),
                taxonomy.search_categories(label),
            )
            for label, score, box in dets
        ]
    return out


def evaluate(catalog, cases, detector: GarmentDetector, garment_cats, k=10, retrieval=True):
    products = catalog.products.set_index("product_id")
    column = group_column(catalog.products)
    code = (products[column] if column != "product_id" else products.index.to_series()).astype(str)
    variants = code.value_counts()
    embed = detector.embed
    rows = {"today": [], "garments": []}
    seconds = []
    for pid, dets in cases:
        own = products.loc[pid, "category"]
        image = load_image(products.loc[pid, "image"])
        detector.base.current = dets
        t = time.perf_counter()
        new = detector.detect(image)
        seconds.append(time.perf_counter() - t)
        for name, objects in (("today", dets), ("garments", new)):
            worn = [d for d in objects if set(d.search_categories) & garment_cats]
            pairs = [c for d in worn for c in d.search_categories if c in garment_cats]
            covered = any(own in d.search_categories for d in worn)
            top = worn[0].search_categories[0] if worn else None
            row = {
                "covered": covered,
                "pairs": len(pairs),
                "right": sum(c == own for c in pairs),
                "objects": len(worn),
                "top1": top == own,
                "own_in_scope": own in garment_cats,
            }
            if retrieval and variants.get(code[pid], 0) > 1 and worn:
                queries = embed([crop(image, d.box) for d in worn])
                hit = False
                for d, q in zip(worn, queries):
                    cats = [c for c in d.search_categories if c in catalog.indexes]
                    found = catalog.search_categories(q, cats, k + 1)
                    ids = [p for p, _ in found if p != pid][:k]
                    hit |= any(code[i] == code[pid] for i in ids)
                row["look"] = hit
            rows[name].append(row)
    return rows, seconds


def table(rows, seconds, people):
    def mean(name, key):
        values = [r[key] for r in rows[name] if key in r]
        return (np.mean(values) if values else float("nan")), len(values)

    print(f"\n{people} held-out photos with a detected person\n")
    print(
        "| behaviour | coverage | precision | top-1 precision | objects / person | look-recall@10 (n) |"
    )
    print("|---|---|---|---|---|---|")
    for name in ("today", "garments"):
        rs = rows[name]
        precision = sum(r["right"] for r in rs) / max(1, sum(r["pairs"] for r in rs))
        look, n = mean(name, "look")
        label = (
            "person searches all garment categories"
            if name == "today"
            else "garments inside the person"
        )
        print(
            f"| {label} | {mean(name, 'covered')[0]:.3f} | {precision:.3f} | "
            f"{mean(name, 'top1')[0]:.3f} | {mean(name, 'objects')[0]:.2f} | {look:.3f} ({n}) |"
        )
    s = np.array(seconds) * 1000
    print(
        f"\ngarment stage: {np.median(s):.0f} ms median per photo ({np.percentile(s, 90):.0f} ms p90), "
        "on top of the COCO detector"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", required=True)
    ap.add_argument("--dataset", required=True, help="hm or clothing (names the scan cache)")
    ap.add_argument("--scan", help="scan cache (JSON lines)")
    ap.add_argument("--limit", type=int, default=0, help="at most this many photos")
    ap.add_argument("--min-score", type=float, nargs="*", default=[GarmentSettings.min_score])
    ap.add_argument("--full-ratio", type=float, nargs="*", default=[GarmentSettings.full_ratio])
    ap.add_argument("--no-retrieval", action="store_true")
    args = ap.parse_args()
    settings = load_settings()
    taxonomy = load_taxonomy(settings.taxonomy)
    catalog = Catalog.load(args.catalog)
    t = time.perf_counter()
    fitted = fit_garments(catalog, fit=GarmentFit(split="train"))
    print(
        f"classifier: {fitted.manifest['training']['photos']} training photos, "
        f"{len(fitted.classifier.categories)} categories, fitted in {time.perf_counter() - t:.1f} s"
    )
    path = Path(args.scan) if args.scan else CACHE / f"scan-{args.dataset}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    dets = scan(catalog, args.dataset, taxonomy, settings, path)
    ids = set(catalog.products["product_id"].astype(str))
    cases = [
        (p, d) for p, d in sorted(dets.items()) if p in ids and any(x.label == "person" for x in d)
    ]
    if args.limit:
        cases = cases[: args.limit]
    garment_cats = set(fitted.priors.categories) & set(fitted.classifier.categories)
    embed = catalog_embed(catalog, settings)
    for min_score in args.min_score:
        for ratio in args.full_ratio:
            detector = GarmentDetector(
                Cached(taxonomy),
                fitted.classifier,
                fitted.priors,
                embed,
                max_objects=settings.max_objects,
                settings=GarmentSettings(min_score=min_score, full_ratio=ratio),
            )
            rows, seconds = evaluate(
                catalog, cases, detector, garment_cats, retrieval=not args.no_retrieval
            )
            print(f"\n## min_score {min_score}, full_ratio {ratio}")
            table(rows, seconds, len(cases))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
