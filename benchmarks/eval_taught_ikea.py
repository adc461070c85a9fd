"""Catalog-taught detection on the IKEA rooms: fit on training rooms, measure on held-out ones.

Room split: ``catalog.taught.split`` (sha1 of the room id; 60% train, 40% held out). The fit
uses only training rooms as backgrounds; every number printed is over held-out rooms.
Fit data and held-out region features are cached under artifacts/cache/taught/ so that the
designs are compared on identical regions.

    .venv/bin/python benchmarks/eval_taught_ikea.py --catalog catalogs/ikea-yolo --scenes 400 \
        [--recall] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from catalog import Catalog
from catalog.taught import fit_detector, select_scenes
from catalog.taught.detector import TaughtDetector
from catalog.taught.fit import FitSettings
from catalog.taught.model import DESIGNS, fit_classifier
from catalog.taught.regions import RegionFeaturizer
from shopthelook.core.config import load_settings
from shopthelook.core.datasets import load_pairs, load_scenes
from shopthelook.core.images import load_image
from shopthelook.core.taxonomy import load_taxonomy

CACHE = Path("artifacts/cache/taught")


class Replay(TaughtDetector):
    """A TaughtDetector that reads cached region features of known scenes."""

    def __init__(self, base: TaughtDetector, cached: dict[str, tuple], by_image: dict[str, str]):
        self.__dict__.update(base.__dict__)
        self.cached, self.by_image = cached, by_image
        self.current: str | None = None

    def detect(self, image):
        boxes, x = self.cached[self.current]
        return self.select(boxes, self.classifier.predict_proba(x), image.size)


def fit_data(catalog, rooms, settings, taxonomy, scenes: int):
    path = CACHE / f"fit-{scenes}.npz"
    if path.exists():
        d = np.load(path)
        return d["x"], d["y"], float(d["seconds"])
    t = time.perf_counter()
    fitted, data, notes = fit_detector(
        catalog,
        rooms,
        settings=settings,
        taxonomy=taxonomy,
        fit=FitSettings(scenes=scenes),
        show_progress=True,
    )
    seconds = time.perf_counter() - t
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=data.x, y=data.y, seconds=seconds)
    return data.x, data.y, seconds


def heldout_features(featurizer, images: dict[str, str]):
    path = CACHE / "heldout.npz"
    if path.exists():
        d = np.load(path, allow_pickle=False)
        return {s: (d[f"{s}/b"], d[f"{s}/x"]) for s in images}, float(d["seconds"])
    out, t = {}, time.perf_counter()
    for s, img in images.items():
        im = load_image(img)
        b, c, col = featurizer.propose(im)
        out[s] = (b, featurizer.features(im, b, c, col))
    seconds = (time.perf_counter() - t) / max(1, len(images))
    np.savez(
        path,
        seconds=seconds,
        **{f"{s}/b": v[0] for s, v in out.items()},
        **{f"{s}/x": v[1] for s, v in out.items()},
    )
    return out, seconds


def detection_metrics(dets_of: dict, pairs, category_of) -> dict:
    covered = total = 0
    per = defaultdict(lambda: [0, 0, 0, 0])  # pairs, covered, objects, right objects
    right = objects = 0
    for scene, group in pairs.groupby("scene_id"):
        truth = {category_of[p] for p in group["product_id"]}
        dets = dets_of[scene]
        searched = {c for d in dets for c in (d.search_categories or (d.category,)) if c}
        for pid in group["product_id"]:
            c = category_of[pid]
            per[c][0] += 1
            per[c][1] += c in searched
            total += 1
            covered += c in searched
        for d in dets:
            objects += 1
            ok = d.category in truth
            right += ok
            per[d.category][2] += 1
            per[d.category][3] += ok
    return {
        "coverage": round(covered / max(1, total), 3),
        "category_precision": round(right / max(1, objects), 3),
        "objects_per_room": round(objects / max(1, len(dets_of)), 2),
        "by_category": {
            c: {
                "pairs": v[0],
                "coverage": round(v[1] / max(1, v[0]), 3),
                "objects": v[2],
                "precision": round(v[3] / max(1, v[2]), 3),
            }
            for c, v in sorted(per.items(), key=lambda kv: -kv[1][0])
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--catalog", default="catalogs/ikea-yolo")
    ap.add_argument("--scenes", type=int, default=400)
    ap.add_argument("--min-score", type=float, nargs="*", default=[0.3])
    ap.add_argument("--per-category", type=int, default=2)
    ap.add_argument("--designs", nargs="*", default=list(DESIGNS) + ["yolo"])
    ap.add_argument("--recall", action="store_true", help="also look-recall (embeds crops)")
    ap.add_argument("--json")
    args = ap.parse_args()
    settings = load_settings()
    taxonomy = load_taxonomy()
    catalog = Catalog.load(args.catalog)
    scenes = load_scenes("ikea", data_root=settings.data_root)
    pairs = load_pairs("ikea", data_root=settings.data_root)
    image_of = dict(zip(scenes["scene_id"].astype(str), scenes["image"]))
    train = select_scenes(image_of, "train")
    held = select_scenes(image_of, "heldout")
    category_of = dict(zip(catalog.products["product_id"], catalog.products["category"]))
    pairs = pairs[pairs["product_id"].isin(category_of)]
    hpairs = pairs[pairs["scene_id"].isin(set(held))]
    held = [s for s in held if s in set(hpairs["scene_id"])]
    print(
        f"split: {len(train)} training rooms (backgrounds), {len(held)} held-out rooms "
        f"with {len(hpairs)} pairs"
    )
    x, y, fit_seconds = fit_data(
        catalog, [image_of[s] for s in train], settings, taxonomy, args.scenes
    )
    from catalog.taught.files import learnable_categories

    cats = [c for c in learnable_categories(catalog)]
    featurizer = RegionFeaturizer(cats, taxonomy, weights=settings.detector_weights)
    cached, per_scene = heldout_features(featurizer, {s: image_of[s] for s in held})
    report = {
        "split": "heldout",
        "rooms": len(held),
        "pairs": int(len(hpairs)),
        "fit_feature_seconds": round(fit_seconds, 1),
        "region_seconds_per_room": round(per_scene, 3),
        "configs": {},
    }
    for design in args.designs:
        if design == "yolo":
            from detector.yolo import YoloDetector

            det = YoloDetector(settings.detector_weights, taxonomy)
            dets = {s: det.detect(load_image(image_of[s])) for s in held}
            report["configs"]["yolo (COCO mapping)"] = detection_metrics(dets, hpairs, category_of)
            continue
        t = time.perf_counter()
        clf = fit_classifier(x, y, cats, design=design)
        clf_seconds = time.perf_counter() - t
        for ms in args.min_score:
            base = TaughtDetector(
                featurizer, clf, taxonomy, min_score=ms, per_category=args.per_category
            )
            dets = {}
            for s in held:
                b, feats = cached[s]
                im_size = load_image(image_of[s]).size
                dets[s] = base.select(b, clf.predict_proba(feats), im_size)
            m = detection_metrics(dets, hpairs, category_of)
            m["classifier_fit_seconds"] = round(clf_seconds, 1)
            key = f"{design} min_score={ms}"
            report["configs"][key] = m
            print(
                f"{key:<32} coverage {m['coverage']:.3f} precision "
                f"{m['category_precision']:.3f} objects/room {m['objects_per_room']}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    for k, m in report["configs"].items():
        print(
            f"{k:<32} coverage {m['coverage']:.3f} precision {m['category_precision']:.3f} "
            f"objects/room {m['objects_per_room']}"
        )


if __name__ == "__main__":
    main()
