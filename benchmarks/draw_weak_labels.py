"""Draw the weak labels a fit would take from IKEA training rooms: for each category the
room's listed products have, the region the catalog's detector scores highest for it.

Run it on a catalog whose detector was fitted without weak labels (``catalog.taught.fit``'s
first stage) to see the real positives that the default fit adds; on a default catalog it
shows what the refitted classifier would pick.

    .venv/bin/python benchmarks/draw_weak_labels.py --catalog catalogs/ikea-taught \
        --out artifacts/weak-labels.png [--rooms 12] [--categories lamp,rug,cushion]
"""

from __future__ import annotations

import argparse

from draw_taught import COLOURS, contact_sheet, label_box  # benchmarks/: the script's folder
from PIL import ImageDraw

from catalog import Catalog
from catalog.taught import FitSettings, select_scenes
from catalog.taught.files import detector_folder, read_detector
from catalog.taught.regions import RegionFeaturizer
from catalog.taught.scenes import resize_long_side
from catalog.taught.weak import LabelledScene, listed_products, product_vectors, weak_regions
from shopthelook.core.config import load_settings
from shopthelook.core.datasets import load_pairs, load_scenes
from shopthelook.core.images import load_image
from shopthelook.core.taxonomy import load_taxonomy

TILE = 480


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--catalog", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--rooms", type=int, default=12)
    ap.add_argument("--categories", help="only rooms and labels of these (comma-separated)")
    args = ap.parse_args()
    settings = load_settings()
    catalog = Catalog.load(args.catalog)
    fitted = read_detector(detector_folder(args.catalog))
    learned = list(fitted.classifier.categories)
    only = set(args.categories.split(",")) if args.categories else set(learned)
    featurizer = RegionFeaturizer(
        learned,
        load_taxonomy(settings.taxonomy),
        weights=settings.detector_weights,
        config=fitted.region,
        threads=settings.threads,
        runtime=settings.embed_runtime,
    )
    scenes = load_scenes("ikea", data_root=settings.data_root)
    pairs = load_pairs("ikea", data_root=settings.data_root)
    image_of = dict(zip(scenes["scene_id"].astype(str), scenes["image"]))
    category_of = dict(
        zip(catalog.products["product_id"].astype(str), catalog.products["category"])
    )
    image_of_product = dict(
        zip(catalog.products["product_id"].astype(str), catalog.products["image"])
    )
    size = FitSettings().scene_rules.scene_size
    labelled, names = [], []
    for scene in select_scenes(image_of, "train"):
        listed = pairs[pairs["scene_id"] == scene]["product_id"]
        products = tuple(
            (p, c) for p, c in listed_products(listed, category_of, learned) if c in only
        )
        if products:
            image = resize_long_side(load_image(image_of[scene]), size)
            labelled.append(LabelledScene(image, products))
            names.append(scene)
        if len(labelled) >= args.rooms:
            break
    rules = FitSettings().weak_labels
    shown = {p for scene in labelled for p, _ in scene.products}
    photos = {p: path for p, path in image_of_product.items() if p in shown}
    vectors = product_vectors(featurizer, photos, rules)
    found = weak_regions(featurizer, fitted.classifier, labelled, rules, vectors=vectors)
    tiles = []
    for scene, picked in zip(labelled, found.chosen):
        image = scene.image.copy()
        image.thumbnail((TILE, TILE))
        scale = image.width / scene.image.width
        draw = ImageDraw.Draw(image)
        for i, (category, box) in enumerate(picked):
            label_box(draw, [v * scale for v in box], category, COLOURS[i % len(COLOURS)])
        tiles.append(image)
    contact_sheet(tiles, tile=TILE).save(args.out)
    print(f"{args.out}: weak labels in {len(tiles)} training rooms ({', '.join(names[:3])}, ...)")


if __name__ == "__main__":
    main()
