"""Look-recall@10 of embedding backbones on the IKEA scene -> product pairs (a quick proxy).

For each room -> product pair whose product is a chair, bed, table, sofa or plant pot, the
YOLO detector runs on the room (conf 0.25); the crops whose label searches the product's
category (taxonomy.search_categories) are embedded, and so are all products of that
category. A pair is *detectable* when the room has at least one such crop; it is a hit when
the true product is in the top 10 of some crop. look-recall@10 = hits / detectable pairs.

    .venv/bin/python benchmarks/eval_backbone_ikea.py --backbone yolo --backbone random
    .venv/bin/python benchmarks/eval_backbone_ikea.py --sweep          # yolo layers/pooling

Detections and embeddings are cached under /tmp/stl_embedder_eval (delete it to recompute).

Measured (374 products, 698 crops, 279 detectable pairs; +-.03 is noise), look-recall@10:
    random .204   hvf .305 (colour only .301, LBP only .161, stats only .276)
    yolo (layers 4,6,8; GeM p=3; 256 px letterbox) .563   [p=2 .520, p=4 .559, p=6 .548]
    yolo, the first stand-in (layers 6,9,15,18,21; avg) .401
    sweep means over 224/256/320 x letterbox/stretch: GeM .407, max .389, avg+max .386,
    avg .348 (masking the letterbox padding out of avg: no change); best single layers 8
    (max .500) and 6 (GeM .490); SPPF (9) and neck (12-21) layers lower
    yolo+hvf*0.25 .545, yolo+hvf*0.5 .448 (hvf does not help on this proxy)
    crops RoI-pooled from one scene pass (--regions): 640 px .419, 960 px .498
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

import embedder  # noqa: E402
from embedder import create_backbone  # noqa: E402
from embedder.base import l2_normalize  # noqa: E402
from embedder.yolo import YoloBackbone, YoloFeatureConfig, letterbox, pool_map  # noqa: E402
from shopthelook.core.config import Settings, apply_threads  # noqa: E402
from shopthelook.core.images import crop, load_image  # noqa: E402
from shopthelook.core.taxonomy import load_taxonomy  # noqa: E402
from shopthelook.core.types import Box  # noqa: E402

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
    from shopthelook.core.yolo_model import load_yolo

    model = load_yolo(settings.detector_weights)
    found = {}
    for room_id in room_ids:
        image = load_image(ikea / rooms.loc[room_id, "image"])
        result = model.predict(
            image, conf=0.25, iou=settings.detection_iou, imgsz=640, verbose=False
        )[0]
        found[room_id] = [
            (result.names[int(c)], float(s), *map(float, b))
            for b, s, c in zip(
                result.boxes.xyxy.tolist(), result.boxes.conf.tolist(), result.boxes.cls.tolist()
            )
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
            meta.append((room_id, categories, Box(*xyxy).expanded(margin, *image.size)))
    return crops, meta


def look_recall(product_vecs, crop_vecs, products, pairs, meta, k: int = K) -> tuple[float, int]:
    recalls, detectable = look_recalls(product_vecs, crop_vecs, products, pairs, meta, (k,))
    return recalls[k], detectable


def look_recalls(product_vecs, crop_vecs, products, pairs, meta, ks=(5, 10, 20)):
    """({k: look-recall@k}, detectable pairs)."""
    by_category = {c: np.flatnonzero(products.category.values == c) for c in CATEGORIES}
    crops_of_room: dict[str, list[int]] = {}
    for i, (room_id, *_rest) in enumerate(meta):
        crops_of_room.setdefault(room_id, []).append(i)
    row_of = {pid: i for i, pid in enumerate(products.product_id)}
    hits = dict.fromkeys(ks, 0)
    detectable = 0
    for room_id, product_id, category in pairs[["room_id", "product_id", "category"]].itertuples(
        index=False
    ):
        crops = [i for i in crops_of_room.get(room_id, []) if category in meta[i][1]]
        if not crops:
            continue
        detectable += 1
        candidates = by_category[category]
        sims = crop_vecs[crops] @ product_vecs[candidates].T
        ranks = np.argsort(-sims, axis=1)
        best = min(int(np.flatnonzero(candidates[r] == row_of[product_id])[0]) for r in ranks)
        for k in ks:
            hits[k] += best < k
    return {k: h / max(detectable, 1) for k, h in hits.items()}, detectable


def embed_with(name: str, images, settings: Settings, tag: str) -> np.ndarray:
    # the key covers the backbones' code, so a changed default never reuses stale vectors
    code = b"".join(p.read_bytes() for p in sorted(Path(embedder.__file__).parent.glob("*.py")))
    key = hashlib.sha1(f"{name}|{tag}|{len(images)}".encode() + code).hexdigest()[:12]
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
    backbone = YoloBackbone(
        Settings().detector_weights, YoloFeatureConfig(layers, "avg", size, resize)
    )
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


def scene_maps(backbone: YoloBackbone, image, size: int):
    """(feature maps of the scene letterboxed to ``size``, image->input scale, offset)."""
    canvas, (x1, y1, x2, _y2) = letterbox(image, size)
    batch = torch.from_numpy(canvas[None]).permute(0, 3, 1, 2).float().div_(255.0)
    with torch.inference_mode():
        maps = backbone.feature_maps(batch.contiguous())
    return maps, (x2 - x1) / image.size[0], (float(x1), float(y1))


def pool_regions(backbone: YoloBackbone, maps, scale, offset, size, boxes, output_size=7):
    """[len(boxes), dim]: each box RoIAligned from every hooked map, then pooled like a crop."""
    from torchvision.ops import roi_align

    (ox, oy), k = offset, scale
    rois = torch.tensor(
        [[0.0, b.x1 * k + ox, b.y1 * k + oy, b.x2 * k + ox, b.y2 * k + oy] for b in boxes]
    )
    blocks = []
    with torch.inference_mode():
        for index in backbone.config.layers:
            fmap = maps[index]
            region = roi_align(fmap, rois, output_size, fmap.shape[-1] / size, 2, aligned=True)
            pooled = pool_map(region, backbone.config.pooling, None, backbone.config.gem_p)
            blocks.append(torch.nn.functional.normalize(pooled, dim=1))
    return l2_normalize(torch.cat(blocks, dim=1).numpy())


def region_recall(products, pairs, rooms, meta, ikea, product_images, settings, size: int) -> None:
    """Crop vectors RoI-pooled from one forward pass over the scene, instead of one per crop."""
    backbone = create_backbone("yolo", settings)
    product_vecs = backbone.embed_images(product_images, batch_size=8)
    crop_vecs = np.zeros((len(meta), backbone.dim), np.float32)
    t0 = time.perf_counter()
    for room_id in sorted({m[0] for m in meta}):
        rows = [i for i, m in enumerate(meta) if m[0] == room_id]
        maps, scale, offset = scene_maps(
            backbone, load_image(ikea / rooms.loc[room_id, "image"]), size
        )
        crop_vecs[rows] = pool_regions(
            backbone, maps, scale, offset, size, [meta[i][2] for i in rows]
        )
    r, n = look_recalls(product_vecs, crop_vecs, products, pairs, meta)
    print(
        f"yolo RoI-pooled from {size}px scene maps ({time.perf_counter() - t0:.0f}s)"
        f"{'':14s} look-recall@{K} {r[10]:.3f}  @5 {r[5]:.3f}  @20 {r[20]:.3f}"
        f"  (detectable pairs {n})",
        flush=True,
    )


def combine(blocks: dict, layers, kinds) -> np.ndarray:
    return l2_normalize(
        np.concatenate([blocks[(str(layer), k)] for layer in layers for k in kinds], axis=1)
    )


SWEEP_LAYERS = (
    "4;6;8;9;12;15;18;21;6,9;4,6,9;6,8,9;15,18,21;9,21;6,9,21;6,9,18,21;6,9,15,18,21;"
    "4,6,9,15,18,21;2,4,6,8,9,12,15,18,21"
)


def _layer_sets(text: str):
    return [tuple(int(v) for v in part.split(",")) for part in text.split(";") if part]


def _poolings(text: str):
    return [tuple(part.split(",")) for part in text.split(";") if part]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backbone", action="append", default=[], help="registry name (repeatable)"
    )
    parser.add_argument("--sweep", action="store_true", help="sweep yolo layers / pooling / size")
    parser.add_argument("--sizes", default="224,256,320")
    parser.add_argument(
        "--layers",
        type=_layer_sets,
        default=_layer_sets(SWEEP_LAYERS),
        help="layer sets to sweep, e.g. '6;8;6,8;4,6,8'",
    )
    parser.add_argument(
        "--poolings", type=_poolings, default=_poolings("avg;avg-unmasked;max;gem;avg,max")
    )
    parser.add_argument(
        "--regions",
        type=int,
        action="append",
        default=[],
        metavar="SIZE",
        help="also RoI-pool crops from scene maps at this input size, e.g. 640 (repeatable)",
    )
    parser.add_argument("--margin", type=float, default=0.05)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 on a busy machine)"
    )
    args = parser.parse_args()
    settings = Settings().replace(threads=args.threads)
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
        r, n = look_recalls(pv, cv, products, pairs, meta)
        print(
            f"{label:60s} look-recall@{K} {r[10]:.3f}  @5 {r[5]:.3f}  @20 {r[20]:.3f}"
            f"  (detectable pairs {n})",
            flush=True,
        )

    for name in args.backbone:
        t = time.perf_counter()
        pv = embed_with(name, product_images, settings, "products")
        cv = embed_with(name, crops, settings, f"crops{args.margin}")
        report(f"{name} ({time.perf_counter() - t:.0f}s)", pv, cv)

    for size in args.regions:
        region_recall(products, pairs, rooms, meta, ikea, product_images, settings, size)

    if args.sweep:
        for size, resize in itertools.product(
            map(int, args.sizes.split(",")), ("letterbox", "stretch")
        ):
            pb = sweep_features(product_images, size, resize, "products")
            cb = sweep_features(crops, size, resize, f"crops{args.margin}")
            for layers in args.layers:
                for kinds in args.poolings:
                    if resize == "stretch" and kinds == ("avg-unmasked",):
                        continue
                    report(
                        f"{size} {resize} layers={layers} {'+'.join(kinds)}",
                        combine(pb, layers, kinds),
                        combine(cb, layers, kinds),
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
