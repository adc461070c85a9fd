"""Look-recall@10 of embedding backbones on the IKEA scene -> product pairs (a quick proxy).

For each room -> product pair whose product is a chair, bed, table, sofa or plant pot, the
YOLO detector runs on the room (conf 0.25); the crops whose label searches the product's
category (taxonomy.search_categories) are embedded, and so are all products of that
category. A pair is *detectable* when the room has at least one such crop; it is a hit when
the true product is in the top 10 of some crop. look-recall@10 = hits / detectable pairs.

    .venv/bin/python benchmarks/eval_backbone_ikea.py --backbone yolo --backbone random
    .venv/bin/python benchmarks/eval_backbone_ikea.py --sweep          # yolo layers/pooling

Detections and embeddings are cached under /tmp/stl_embedder_eval (delete it to recompute).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedder import create_backbone  # noqa: E402
from embedder.base import l2_normalize  # noqa: E402
from embedder.yolo import YoloBackbone, YoloFeatureConfig, pool_map  # noqa: E402
from shopthelook.config import Settings, apply_threads  # noqa: E402
from shopthelook.images import crop, load_image  # noqa: E402
from shopthelook.taxonomy import load_taxonomy  # noqa: E402
from shopthelook.types import Box  # noqa: E402

CATEGORIES = ("chair", "bed", "table", "sofa", "plant-pot")
CACHE = Path("/tmp/stl_embedder_eval")
K = 10


def load_data(ikea: Path):
    taxonomy = load_taxonomy()
    products = pd.read_csv(ikea / "products.csv", dtype=str)
    products["category"] = taxonomy.categorize_table(products)
    products = products[products.category.isin(CATEGORIES)].reset_index(drop=True)
    products["path"] = [str(ikea / p) for p in products.image]
    rooms = pd.read_csv(ikea / "rooms.csv", dtype=str).set_index("room_id")
    pairs = pd.read_csv(ikea / "room_products.csv", dtype=str)
    pairs = pairs.merge(products[["product_id", "category"]], on="product_id")
    pairs = pairs[pairs.room_id.isin(rooms.index)].reset_index(drop=True)
    return taxonomy, products, rooms, pairs


def detect(rooms: pd.DataFrame, room_ids, ikea: Path, settings: Settings) -> dict:
    """room_id -> [(label, score, x1, y1, x2, y2)], cached."""
    path = CACHE / "detections.json"
    if path.exists():
        return json.loads(path.read_text())
    from detector.model import load_yolo

    model = load_yolo(settings.detector_weights)
    found = {}
    for room_id in room_ids:
        image = load_image(ikea / rooms.loc[room_id, "image"])
        result = model.predict(image, conf=0.25, iou=settings.detection_iou, imgsz=640, verbose=False)[0]
        found[room_id] = [
            (result.names[int(c)], float(s), *map(float, b))
            for b, s, c in zip(result.boxes.xyxy.tolist(), result.boxes.conf.tolist(), result.boxes.cls.tolist())
        ]
    apply_threads(settings.threads)
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(found))
    return found


def build_crops(pairs, rooms, detections, taxonomy, ikea: Path, margin: float):
    """crop images and their (room_id, searched categories)."""
    crops, meta = [], []
    for room_id in sorted(set(pairs.room_id)):
        image = None
        for label, _score, *xyxy in detections.get(room_id, []):
            categories = set(taxonomy.search_categories(label)) & set(CATEGORIES)
            if not categories:
                continue
            image = image or load_image(ikea / rooms.loc[room_id, "image"])
            crops.append(crop(image, Box(*xyxy), margin))
            meta.append((room_id, categories))
    return crops, meta


def look_recall(product_vecs, crop_vecs, products, pairs, meta, k: int = K) -> tuple[float, int]:
    by_category = {c: np.flatnonzero(products.category.values == c) for c in CATEGORIES}
    crops_of_room: dict[str, list[int]] = {}
    for i, (room_id, _cats) in enumerate(meta):
        crops_of_room.setdefault(room_id, []).append(i)
    row_of = {pid: i for i, pid in enumerate(products.product_id)}
    hits = detectable = 0
    for room_id, product_id, category in pairs[["room_id", "product_id", "category"]].itertuples(index=False):
        crops = [i for i in crops_of_room.get(room_id, []) if category in meta[i][1]]
        if not crops:
            continue
        detectable += 1
        candidates = by_category[category]
        sims = crop_vecs[crops] @ product_vecs[candidates].T
        top = candidates[np.argsort(-sims, axis=1)[:, :k]]
        hits += bool((top == row_of[product_id]).any())
    return hits / max(detectable, 1), detectable


def embed_with(name: str, images, settings: Settings, tag: str) -> np.ndarray:
    key = hashlib.sha1(f"{name}|{tag}|{len(images)}".encode()).hexdigest()[:12]
    path = CACHE / f"emb_{key}.npy"
    if path.exists():
        return np.load(path)
    backbone = create_backbone(name, settings)
    vecs = backbone.embed_images(images, batch_size=8)
    np.save(path, vecs)
    return vecs


def sweep_features(images, size: int, resize: str, tag: str) -> dict:
    """{(layer, pooling): block-normalised [n, c]} for every hooked layer and pooling."""
    path = CACHE / f"sweep_{tag}_{size}_{resize}.npz"
    if path.exists():
        data = np.load(path)
        return {tuple(k.split("|")): data[k] for k in data.files}
    layers = (2, 4, 6, 8, 9, 12, 15, 18, 21)
    backbone = YoloBackbone(Settings().detector_weights, YoloFeatureConfig(layers, "avg", size, resize))
    out: dict[str, list] = {}
    for start in range(0, len(images), 8):
        batch, mask = backbone.preprocess(images[start : start + 8])
        with torch.inference_mode():
            maps = backbone.feature_maps(batch)
            for layer in layers:
                weight = torch.nn.functional.adaptive_avg_pool2d(mask, maps[layer].shape[-2:])
                for kind in ("avg", "max", "gem"):
                    v = torch.nn.functional.normalize(pool_map(maps[layer], kind, weight), dim=1)
                    out.setdefault(f"{layer}|{kind}", []).append(v.numpy())
                v = torch.nn.functional.normalize(pool_map(maps[layer], "avg"), dim=1)
                out.setdefault(f"{layer}|avg-unmasked", []).append(v.numpy())
    arrays = {k: np.concatenate(v) for k, v in out.items()}
    np.savez(path, **arrays)
    return {tuple(k.split("|")): v for k, v in arrays.items()}


def combine(blocks: dict, layers, kinds) -> np.ndarray:
    return l2_normalize(np.concatenate([blocks[(str(l), k)] for l in layers for k in kinds], axis=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", action="append", default=[], help="registry name (repeatable)")
    parser.add_argument("--sweep", action="store_true", help="sweep yolo layers / pooling / size")
    parser.add_argument("--sizes", default="224,256,320")
    parser.add_argument("--margin", type=float, default=0.05)
    args = parser.parse_args()
    settings = Settings()
    if settings.data_root is None:
        print("../shared/data not found", file=sys.stderr)
        return 2
    apply_threads(settings.threads)
    ikea = settings.data_root / "ikea"
    taxonomy, products, rooms, pairs = load_data(ikea)
    detections = detect(rooms, sorted(set(pairs.room_id)), ikea, settings)
    crops, meta = build_crops(pairs, rooms, detections, taxonomy, ikea, args.margin)
    product_images = [load_image(p) for p in products.path]
    print(f"{len(products)} products, {len(pairs)} pairs, {len(crops)} crops")

    def report(label, pv, cv):
        recall, n = look_recall(pv, cv, products, pairs, meta)
        print(f"{label:60s} look-recall@{K} {recall:.3f}  (detectable pairs {n})", flush=True)

    for name in args.backbone:
        t = time.perf_counter()
        pv = embed_with(name, product_images, settings, "products")
        cv = embed_with(name, crops, settings, f"crops{args.margin}")
        report(f"{name} ({time.perf_counter() - t:.0f}s)", pv, cv)

    if args.sweep:
        for size, resize in itertools.product(map(int, args.sizes.split(",")), ("letterbox", "stretch")):
            pb = sweep_features(product_images, size, resize, "products")
            cb = sweep_features(crops, size, resize, f"crops{args.margin}")
            for layers in ((4,), (6,), (8,), (9,), (12,), (15,), (18,), (21,), (6, 9), (4, 6, 9),
                           (6, 8, 9), (15, 18, 21), (9, 21), (6, 9, 21), (6, 9, 18, 21),
                           (6, 9, 15, 18, 21), (4, 6, 9, 15, 18, 21), (2, 4, 6, 8, 9, 12, 15, 18, 21)):
                for kinds in (("avg",), ("avg-unmasked",), ("max",), ("gem",), ("avg", "max")):
                    if resize == "stretch" and kinds == ("avg-unmasked",):
                        continue
                    report(f"{size} {resize} layers={layers} {'+'.join(kinds)}",
                           combine(pb, layers, kinds), combine(cb, layers, kinds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
