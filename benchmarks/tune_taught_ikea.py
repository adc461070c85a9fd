"""Choose the taught detector's serving settings on TRAINING rooms; report held-out too.

Needs the caches of benchmarks/eval_taught_ikea.py (fit-400.npz, heldout.npz) and the
learned classifier it saves as learned-400.npz; caches training-room regions itself.
Selection rule used: the highest training-room coverage with training precision >= 0.5.

    .venv/bin/python benchmarks/tune_taught_ikea.py  # writes artifacts/taught/tune.json
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, "benchmarks")
from eval_taught_ikea import (  # noqa: E402
    CACHE,
    Catalog,
    RegionFeaturizer,
    TaughtDetector,
    detection_metrics,
    fit_classifier,
    load_image,
    load_pairs,
    load_scenes,
    load_settings,
    load_taxonomy,
    select_scenes,
)

from catalog.taught.files import learnable_categories
from catalog.taught.model import RegionClassifier

settings = load_settings()
taxonomy = load_taxonomy()
catalog = Catalog.load("catalogs/ikea-yolo")
scenes = load_scenes("ikea", data_root=settings.data_root)
pairs = load_pairs("ikea", data_root=settings.data_root)
image_of = dict(zip(scenes["scene_id"].astype(str), scenes["image"]))
category_of = dict(zip(catalog.products["product_id"], catalog.products["category"]))
pairs = pairs[pairs["product_id"].isin(category_of)]
cats = learnable_categories(catalog)


def split(name):
    ids = select_scenes(image_of, name)
    p = pairs[pairs["scene_id"].isin(set(ids))]
    return [s for s in ids if s in set(p["scene_id"])], p


held, hpairs = split("heldout")
train, tpairs = split("train")
d = np.load(CACHE / "heldout.npz")
hc = {s: (d[f"{s}/b"], d[f"{s}/x"]) for s in held}
tpath = CACHE / "train-rooms.npz"
if tpath.exists():
    d = np.load(tpath)
    tc = {s: (d[f"{s}/b"], d[f"{s}/x"]) for s in train}
else:
    fz = RegionFeaturizer(cats, taxonomy, weights=settings.detector_weights, threads=1)
    tc = {}
    for s in train:
        im = load_image(image_of[s])
        b, c, col = fz.propose(im)
        tc[s] = (b, fz.features(im, b, c, col))
    np.savez(
        tpath, **{f"{s}/b": v[0] for s, v in tc.items()}, **{f"{s}/x": v[1] for s, v in tc.items()}
    )
sizes = {s: load_image(image_of[s]).size for s in held + train}
if not (CACHE / "learned-400.npz").exists():
    fit = np.load(CACHE / "fit-400.npz")
    learned = fit_classifier(fit["x"], fit["y"], cats, design="learned", max_iter=100)
    np.savez(CACHE / "learned-400.npz", **learned.to_arrays())
arr = dict(np.load(CACHE / "learned-400.npz"))
results = []
for design in ("zero-shot", "learned", "hybrid"):
    for w in (0.25, 0.5, 0.75) if design == "hybrid" else (None,):
        clf = RegionClassifier.from_arrays(
            "learned" if design != "zero-shot" else "zero-shot",
            cats,
            arr | {"mix": np.array([w or 1.0])},
        )
        if design == "hybrid":
            clf.design, clf.mix = "hybrid", w
        for ms in (0.05, 0.1, 0.2, 0.3):
            for pc in (1, 2):
                det = TaughtDetector(None, clf, taxonomy, min_score=ms, per_category=pc)
                out = {}
                for name, ids, cache, pp in (
                    ("train", train, tc, tpairs),
                    ("heldout", held, hc, hpairs),
                ):
                    dets = {
                        s: det.select(cache[s][0], clf.predict_proba(cache[s][1]), sizes[s])
                        for s in ids
                    }
                    out[name] = detection_metrics(dets, pp, category_of)
                results.append(
                    {"design": design, "mix": w, "min_score": ms, "per_category": pc, **out}
                )
                t, h = out["train"], out["heldout"]
                print(
                    f"{design:<9} mix={w} ms={ms} pc={pc} | train cov {t['coverage']:.3f} prec {t['category_precision']:.3f} obj {t['objects_per_room']} | heldout cov {h['coverage']:.3f} prec {h['category_precision']:.3f} obj {h['objects_per_room']}",
                    flush=True,
                )
Path("artifacts/taught/tune.json").write_text(json.dumps(results, indent=1))
