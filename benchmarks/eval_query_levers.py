"""Three ways to re-score an object's products, each measured on the IKEA room split.

The default build's objects are recorded once per room (box, searched categories, crop
vector), then their products are scored again offline, by the rules of ``evaluate_looks``
(a pair is a hit at K when its product is in the top K of an object of its room that
searches its category):

- ``popularity``: cosine + ``w`` x log(1 + training rooms whose list has the product);
- ``room views``: each product listed in a training room is placed there as the weak labels
  place it (``catalog.taught.weak``: log p(category) + 15 x cosine with the product photo)
  and that crop, embedded as the pipeline embeds an object, is a second vector of the
  product; a product scores max(photo cosine, view cosine + ``delta``);
- ``roi blend``: the object's query is unit(crop vector) + ``g`` x unit(its RoI features of
  the detector's scene pass), the features the likeness already compares with the catalog.

Training rooms (sha1 bucket < 6) are scored with their own room left out of the counts and
the views; held-out rooms (bucket >= 6) only see what the training rooms give. The
detector was fitted on the training rooms, so only the held-out rows decide.

    .venv/bin/python benchmarks/eval_query_levers.py --catalog catalogs/ikea-taught

Recordings are cached in ``artifacts/cache/levers/`` (about 3 minutes the first time).
"""

from __future__ import annotations

import argparse
import pickle
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog import Catalog  # noqa: E402
from catalog.taught import FitSettings, select_scenes  # noqa: E402
from catalog.taught.files import detector_folder, read_detector  # noqa: E402
from catalog.taught.regions import RegionFeaturizer  # noqa: E402
from catalog.taught.scenes import resize_long_side  # noqa: E402
from catalog.taught.weak import (  # noqa: E402
    LabelledScene,
    listed_products,
    product_vectors,
    weak_regions,
)
from ranker.base import Ranker  # noqa: E402
from shopthelook.core.config import REPO_ROOT, apply_threads, load_settings  # noqa: E402
from shopthelook.core.datasets import load_pairs, load_scenes  # noqa: E402
from shopthelook.core.images import crop, load_image  # noqa: E402
from shopthelook.core.taxonomy import load_taxonomy  # noqa: E402
from shopthelook.core.types import Box  # noqa: E402
from shopthelook.pipeline import ShopTheLook  # noqa: E402

KS = (1, 5, 10, 20)


class RecordingRanker(Ranker):
    """Keeps the visual order and records what each object searched with."""

    name = "recording"

    def __init__(self) -> None:
        self.objects: dict[str, list[dict]] = {}

    def rank(self, context, candidates):
        d = context.detection
        self.objects.setdefault(context.scene_id, []).append(
            {
                "categories": list(d.search_categories) or ([d.category] if d.category else []),
                "query": np.asarray(context.query_embedding, np.float32),
                "box": (d.box.x1, d.box.y1, d.box.x2, d.box.y2),
            }
        )
        return sorted(candidates, key=lambda h: -h.score)


def unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-9)


def featurizer_of(catalog_dir: str, settings):
    fitted = read_detector(detector_folder(catalog_dir))
    featurizer = RegionFeaturizer(
        list(fitted.classifier.categories),
        load_taxonomy(settings.taxonomy),
        weights=settings.detector_weights,
        config=fitted.region,
        threads=settings.threads,
        runtime=settings.embed_runtime,
    )
    return featurizer, fitted.classifier


def record(pipeline, featurizer, rooms_of, image_of) -> dict[str, dict]:
    """split -> scene -> recorded objects (``pipeline`` ranks with a RecordingRanker), with
    their RoI features."""
    recorder = pipeline.ranker
    for split in ("train", "heldout"):
        for scene in rooms_of[split]:
            pipeline.shop_the_look(image_of[scene], top_k=20, scene_id=scene)
    for scene, objects in recorder.objects.items():
        boxes = np.array([o["box"] for o in objects], np.float32)
        image = load_image(image_of[scene]).convert("RGB")
        visual = featurizer.features(image, boxes)[:, featurizer.layout.visual]
        for o, roi in zip(objects, visual):
            o["roi"] = roi
    return {s: {r: recorder.objects.get(r, []) for r in rooms_of[s]} for s in rooms_of}


def room_views(featurizer, classifier, catalog, embedder, pairs, rooms, image_of):
    """(room, product row, crop vector) for each listed product of the training rooms, at
    the region the weak labels place it (``weak_regions``), cropped from the full photo."""
    ids = catalog.products["product_id"].astype(str)
    category_of = dict(zip(ids, catalog.products["category"]))
    photo_of = dict(zip(ids, catalog.products["image"]))
    row_of = {p: i for i, p in enumerate(ids)}
    rules, size = FitSettings().weak_labels, FitSettings().scene_rules.scene_size
    views = []
    for scene in rooms:
        listed = pairs[pairs["scene_id"] == scene]["product_id"]
        wanted = listed_products(listed, category_of, classifier.categories)
        if not wanted:
            continue
        full = load_image(image_of[scene]).convert("RGB")
        labelled = LabelledScene(resize_long_side(full, size), wanted)
        photos = product_vectors(featurizer, {p: photo_of[p] for p, _ in wanted}, rules)
        (picked,) = weak_regions(featurizer, classifier, [labelled], rules, vectors=photos).chosen
        scale = full.width / labelled.image.width
        crops = [crop(full, Box(*(v * scale for v in box))) for _, box in picked]
        # weak_regions places the scene's products in their given order, one region each
        for (product_id, _), vector in zip(wanted, embedder.embed_images(crops, batch_size=16)):
            views.append((scene, row_of[product_id], vector))
    return views


def look_recall(recorded, truth, catalog, score_of) -> dict[int, float]:
    """evaluate_looks' all-pairs look-recall with products scored by ``score_of``."""
    ids = catalog.products["product_id"].astype(str).to_numpy()
    category = catalog.products["category"].to_numpy()
    hits, n = Counter(), 0
    for scene, objects in recorded.items():
        lists = []
        for o in objects:
            searched = np.isin(category, o["categories"] or list(set(category)))
            score = np.where(searched, score_of(scene, o), -np.inf)
            lists.append(list(ids[np.argsort(-score)[: max(KS)]]))
        for product_id in truth.get(scene, ()):
            n += 1
            for k in KS:
                hits[k] += any(product_id in ranked[:k] for ranked in lists)
    return {k: hits[k] / max(1, n) for k in KS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalog", required=True)
    ap.add_argument("--cache", default=str(REPO_ROOT / "artifacts" / "cache" / "levers"))
    args = ap.parse_args()
    settings = load_settings()
    apply_threads(settings.threads)
    catalog = Catalog.load(args.catalog)
    scenes = load_scenes("ikea", data_root=settings.data_root)
    pairs = load_pairs("ikea", data_root=settings.data_root)
    pairs = pairs.assign(
        scene_id=pairs["scene_id"].astype(str), product_id=pairs["product_id"].astype(str)
    )
    pairs = pairs[pairs["product_id"].isin(set(catalog.products["product_id"].astype(str)))]
    pairs = pairs.drop_duplicates(["scene_id", "product_id"])
    image_of = dict(zip(scenes["scene_id"].astype(str), scenes["image"]))
    with_pairs = [s for s in pairs["scene_id"].astype(str).unique() if s in image_of]
    rooms_of = {s: select_scenes(with_pairs, s) for s in ("train", "heldout")}
    truth = pairs.groupby("scene_id")["product_id"].apply(lambda p: set(map(str, p))).to_dict()

    cache = Path(args.cache) / f"{Path(args.catalog).name}.pkl"
    if cache.exists():
        recorded, views = pickle.loads(cache.read_bytes())
    else:
        featurizer, classifier = featurizer_of(args.catalog, settings)
        pipeline = ShopTheLook(catalog, settings, ranker=RecordingRanker())
        recorded = record(pipeline, featurizer, rooms_of, image_of)
        views = room_views(
            featurizer, classifier, catalog, pipeline.embedder, pairs, rooms_of["train"], image_of
        )
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(pickle.dumps((recorded, views)))

    vectors = catalog.vectors
    ids = catalog.products["product_id"].astype(str)
    train_pairs = pairs[pairs["scene_id"].astype(str).isin(set(rooms_of["train"]))]
    rooms_with = train_pairs.groupby(train_pairs["product_id"].astype(str)).size()
    counts = ids.map(rooms_with).fillna(0).to_numpy()
    view_room = np.array([v[0] for v in views])
    view_row = np.array([v[1] for v in views])
    view_vec = np.stack([v[2] for v in views]).astype(np.float32)

    def own(scene: str) -> np.ndarray:
        return ids.isin(truth.get(scene, ())).to_numpy()

    def popularity(w):
        return lambda scene, o: (
            vectors @ o["query"]
            + w * np.log1p(counts - (own(scene) if scene in rooms_of["train"] else 0))
        )

    def views_max(delta):
        def score(scene, o):
            photo = vectors @ o["query"]
            keep = view_room != scene
            best = np.full(len(vectors), -np.inf)
            np.maximum.at(best, view_row[keep], view_vec[keep] @ o["query"])
            return np.maximum(photo, best + delta)

        return score

    def roi_blend(g):
        return lambda scene, o: vectors @ unit(unit(o["query"]) + g * unit(o["roi"]))

    variants = [("visual (the default)", popularity(0.0))]
    variants += [(f"popularity w={w}", popularity(w)) for w in (0.01, 0.03, 0.1)]
    variants += [(f"room views delta={d}", views_max(d)) for d in (-0.1, -0.05, 0.0)]
    variants += [(f"roi blend g={g}", roi_blend(g)) for g in (0.25, 0.5, 1.0)]
    n = {s: sum(len(truth.get(r, ())) for r in rooms_of[s]) for s in rooms_of}
    print(f"{len(views)} room views from {len(rooms_of['train'])} training rooms")
    print("| variant | train R@1 | @10 | @20 | held-out R@1 | @5 | @10 | @20 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, score_of in variants:
        tr = look_recall(recorded["train"], truth, catalog, score_of)
        ho = look_recall(recorded["heldout"], truth, catalog, score_of)
        print(
            f"| {name} | {tr[1]:.3f} | {tr[10]:.3f} | {tr[20]:.3f} | "
            f"{ho[1]:.3f} | {ho[5]:.3f} | {ho[10]:.3f} | {ho[20]:.3f} |"
        )
    print(f"pairs: train {n['train']}, held out {n['heldout']}")


if __name__ == "__main__":
    main()
