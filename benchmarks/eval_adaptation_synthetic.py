"""Crop -> product adaptation trained on synthetic-scene pairs: look-recall on held-out rooms.

Split: the taught detector's (catalog/taught/split.py: sha1(room id) mod 10 < 6 -> training).
Training rooms are split again (seeded) into *fit* rooms (backgrounds of the synthetic
scenes, mined pairs) and *validation* rooms (early stopping and the choice of variant, on
their real pairs' look-recall). Every held-out number is on rooms nothing here trained on.

1. Detections (COCO mapping "yolo"; the complement taught detector of --taught-catalog when
   it has one) of every room, cropped as the pipeline crops them, embedded once (cached).
2. Mined pairs: fit rooms, one product and one detection of a category (embedder.adaptation).
3. Synthetic pairs: cut-outs of every product pasted into fit rooms (catalog.adaptation_pairs).
4. Residual SAME heads (products as groups: photo + synthetic crops [+ mined crops]), one per
   variant, early stopping on validation rooms' covered look-recall (mean of R@1/5/10/20).
5. Look-recall before / after on validation and held-out rooms from the cached vectors, and
   for the variant chosen on validation the project's evaluate_looks with the same detections.

    .venv/bin/python benchmarks/eval_adaptation_synthetic.py --scenes 2000

Caches under artifacts/cache/adaptation/; writes artifacts/adaptation-synthetic/results.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.eval_adaptation import ContentCachedBackbone  # noqa: E402
from catalog import Catalog  # noqa: E402
from catalog.adaptation_pairs import (  # noqa: E402
    SyntheticPairRules,
    product_cutouts,
    synthetic_pairs,
)
from catalog.taught.split import scene_split  # noqa: E402
from embedder.adaptation import (  # noqa: E402
    SceneObjects,
    crop_recall,
    mine_crop_pairs,
    pair_groups,
    vector_look_recall,
)
from embedder.factory import create_backbone  # noqa: E402
from embedder.head import Embedder  # noqa: E402
from embedder.train_same import TrainConfig, train_same  # noqa: E402
from shopthelook.core.config import REPO_ROOT, Settings, apply_threads  # noqa: E402
from shopthelook.core.datasets import load_pairs, load_scenes  # noqa: E402
from shopthelook.core.images import crop, load_image  # noqa: E402
from shopthelook.core.taxonomy import load_taxonomy  # noqa: E402
from shopthelook.core.types import Box, Detection  # noqa: E402

CACHE = REPO_ROOT / "artifacts" / "cache" / "adaptation"
KS = (1, 5, 10, 20)
VARIANTS = {  # name: (pair sources, synthetic scenes used, hidden, epochs)
    "mined": ("mined", 0, 256, 30),
    "synthetic-500": ("synthetic", 500, 256, 30),
    "synthetic": ("synthetic", None, 256, 30),
    "synthetic+mined": ("both", None, 256, 30),
    "synthetic+mined-h512": ("both", None, 512, 30),
}


class ReplayDetector:
    """The detections recorded for a room, found again by the picture's content."""

    name = "replay"

    def __init__(self, by_key: dict[str, list[Detection]]) -> None:
        self.by_key = by_key

    @staticmethod
    def key(picture) -> str:
        return hashlib.md5(picture.tobytes() + repr(picture.size).encode()).hexdigest()

    def detect(self, picture) -> list[Detection]:
        return list(self.by_key[self.key(picture)])


def _det_to_dict(d: Detection) -> dict:
    return {"box": d.box.as_list(), "label": d.label, "score": d.score, "category": d.category,
            "search": list(d.search_categories), "source": d.source}  # fmt: skip


def _det_from_dict(r: dict) -> Detection:
    return Detection(Box(*r["box"]), r["label"], r["score"], r["category"], tuple(r["search"]),
                     r["source"])  # fmt: skip


def detections(kind, detector_factory, rooms, image_of, settings) -> dict[str, list[Detection]]:
    """Each room's detections (the pipeline's first max_objects), cached as JSON."""
    path = CACHE / f"detections-{kind}.json"
    cached = json.loads(path.read_text()) if path.exists() else {}
    todo = [r for r in rooms if r not in cached]
    if todo:
        detector = detector_factory()
        t0 = time.perf_counter()
        for i, room in enumerate(todo):
            found = detector.detect(load_image(image_of[room]))[: settings.max_objects]
            cached[room] = [_det_to_dict(d) for d in found]
            if i % 20 == 0:
                print(f"  {kind}: {i}/{len(todo)} rooms, {time.perf_counter() - t0:.0f} s")
        path.write_text(json.dumps(cached))
    return {r: [_det_from_dict(x) for x in cached[r]] for r in rooms}


def object_vectors(kind, dets, image_of, backbone, settings) -> dict[str, np.ndarray]:
    """Backbone vectors of each room's detector objects, cropped as the pipeline crops."""
    path = CACHE / f"objects-{kind}-{backbone.name}.npz"
    store = dict(np.load(path)) if path.exists() else {}
    todo = [r for r in dets if r not in store]
    for room in todo:
        picture = load_image(image_of[room])
        crops = [crop(picture, d.box, settings.crop_margin) for d in dets[room]
                 if d.source == "detector"]  # fmt: skip
        store[room] = (backbone.embed_images(crops) if crops
                       else np.zeros((0, backbone.dim), np.float32))  # fmt: skip
    if todo:
        np.savez(path, **store)
    return store


def scene_objects(dets, vectors, rooms) -> list[SceneObjects]:
    out = []
    for room in rooms:
        objs = [d for d in dets[room] if d.source == "detector"]
        cats = [tuple(d.search_categories) or ((d.category,) if d.category else ()) for d in objs]
        out.append(SceneObjects(room, vectors[room], cats))
    return out


def synthetic_vectors(products, fit_rooms, image_of, backbone, settings, scenes, seed):
    """(product ids, categories, vectors) of the synthetic pairs, cached per setting."""
    rules = SyntheticPairRules(scenes=scenes, margin=settings.crop_margin, seed=seed)
    key = _synthetic_key(rules, fit_rooms, backbone.name)
    path = CACHE / f"synthetic-{key}.npz"
    if path.exists():
        with np.load(path) as f:
            return f["pids"].tolist(), f["cats"].tolist(), f["vectors"], f["scene"]
    t0 = time.perf_counter()
    cutouts, skipped = product_cutouts(products, size=rules.cutout_size)
    print(f"{len(cutouts)} cut-outs in {time.perf_counter() - t0:.0f} s; no plain background: "
          f"{sum(skipped.values())} {skipped}")  # fmt: skip
    backgrounds = [load_image(image_of[r]) for r in fit_rooms]
    pids, cats, vecs, scene_of, batch, samples = [], [], [], [], [], []
    for i, pairs in enumerate(synthetic_pairs(backgrounds, cutouts, rules)):
        batch += pairs
        if len(samples) < 48:
            samples += [p.crop for p in pairs]
        if len(batch) >= 64 or i == scenes - 1:
            vecs.append(backbone.embed_images([p.crop for p in batch]))
            pids += [p.product_id for p in batch]
            cats += [p.category for p in batch]
            scene_of += [p.scene_index for p in batch]
            batch = []
            print(f"  synthetic: {i + 1}/{scenes} scenes, {len(pids)} pairs, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
    _contact_sheet(samples, REPO_ROOT / "artifacts" / "adaptation-synthetic" / "samples.png")
    vectors = np.concatenate(vecs).astype(np.float32)
    np.savez(path, pids=np.asarray(pids), cats=np.asarray(cats), vectors=vectors,
             scene=np.asarray(scene_of))  # fmt: skip
    return pids, cats, vectors, np.asarray(scene_of)


def _synthetic_key(rules, fit_rooms, backbone_name) -> str:
    """The setting and the code that makes the scenes (a changed paste rule is a new cache)."""
    h = hashlib.sha1(repr((rules, sorted(fit_rooms), backbone_name)).encode())
    for name in ("catalog/taught/scenes.py", "catalog/taught/cutout.py",
                 "catalog/adaptation_pairs.py"):  # fmt: skip
        if (REPO_ROOT / name).exists():
            h.update((REPO_ROOT / name).read_bytes())
    return h.hexdigest()[:12]


def _contact_sheet(images, path: Path, cell: int = 128) -> None:
    from PIL import Image

    cols = 8
    sheet = Image.new("RGB", (cols * cell, cell * ((len(images) + cols - 1) // cols)), "white")
    for i, img in enumerate(images):
        im = img.copy()
        im.thumbnail((cell, cell))
        sheet.paste(im, ((i % cols) * cell, (i // cols) * cell))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def mean_covered(r) -> float:
    return float(np.mean([r.hits.get(k, 0) / max(1, r.covered) for k in KS]))


def official(products, product_vecs, head, backbone, dets, vectors, rooms, scenes, pairs,
             image_of, settings, taxonomy, out: Path):  # fmt: skip
    """evaluate_looks with the recorded detections and cached crop vectors."""
    from shopthelook.evaluate import evaluate_looks
    from shopthelook.pipeline import ShopTheLook

    cached, replay = ContentCachedBackbone(backbone), {}
    for room in rooms:
        picture = load_image(image_of[room], max_pixels=settings.max_image_pixels)
        replay[ReplayDetector.key(picture)] = dets[room]
        crops = [crop(picture, d.box, settings.crop_margin) for d in dets[room]
                 if d.source == "detector"]  # fmt: skip
        cached.remember(crops, vectors[room])
    embedder = Embedder(cached, head)
    row = {p: i for i, p in enumerate(products["image"])}
    transformed = embedder.head.transform(product_vecs)

    def embed(images, _embedder, settings=None, show_progress=False):
        idx = [row[p] for p in images]
        return transformed[idx], np.ones(len(idx), bool), []

    catalog = Catalog.build(products.drop(columns=["row_id"], errors="ignore"), embedder=embedder,
                            taxonomy=taxonomy, out=out, settings=settings, source="ikea",
                            embed=embed)  # fmt: skip
    pipeline = ShopTheLook(catalog, settings, detector=ReplayDetector(replay), embedder=embedder,
                           taxonomy=taxonomy)  # fmt: skip
    return evaluate_looks(pipeline, scenes, pairs, ks=KS, scene_ids=set(rooms))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--catalog", default=str(REPO_ROOT / "catalogs" / "ikea-effnet-lite0"))
    p.add_argument(
        "--taught-catalog", default=str(REPO_ROOT / "catalogs" / "ikea-effnet-lite0-taught")
    )
    p.add_argument("--scenes", type=int, default=2000, help="synthetic scenes generated")
    p.add_argument("--val-fraction", type=float, default=0.25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", nargs="*", default=list(VARIANTS))
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--patience", type=int, default=6)
    p.add_argument("--out", default=str(REPO_ROOT / "artifacts" / "adaptation-synthetic"))
    args = p.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    settings = Settings()
    apply_threads(2)
    taxonomy = load_taxonomy(settings.taxonomy)
    catalog = Catalog.load(args.catalog)
    assert catalog.head == "identity", "start from a catalog without a head"
    products = catalog.products.copy()
    product_vecs = np.asarray(catalog.vectors, dtype=np.float32)
    pids, pcats = products["product_id"].astype(str).tolist(), products["category"].tolist()
    scenes = load_scenes("ikea", data_root=settings.data_root)
    pairs = load_pairs("ikea", data_root=settings.data_root)
    image_of = dict(zip(scenes["scene_id"].astype(str), scenes["image"], strict=True))
    rooms = sorted(set(pairs["scene_id"].astype(str)) & set(image_of))
    train = [r for r in rooms if scene_split(r) == "train"]
    heldout = [r for r in rooms if scene_split(r) == "heldout"]
    order = np.random.default_rng(args.seed).permutation(len(train))
    n_val = int(round(len(train) * args.val_fraction))
    val = sorted(train[i] for i in order[:n_val])
    fit = sorted(train[i] for i in order[n_val:])
    backgrounds = sorted(s for s in image_of if scene_split(s) == "train" and s not in set(val))
    assert not (set(val) | set(fit) | set(backgrounds)) & set(heldout)
    print(f"rooms with pairs: {len(fit)} fit, {len(val)} validation, {len(heldout)} held out; "
          f"{len(backgrounds)} background rooms")  # fmt: skip
    products_of = pairs.groupby("scene_id")["product_id"].apply(lambda s: [str(x) for x in s])
    products_of = products_of.to_dict()

    backbone = create_backbone(catalog.backbone, settings)
    from detector import create_detector

    kinds = {"yolo": lambda: create_detector(settings, taxonomy, kind="yolo")}
    from catalog.taught import has_detector, load_catalog_detector

    if has_detector(args.taught_catalog):
        kinds["taught"] = lambda: load_catalog_detector(
            Catalog.load(args.taught_catalog), settings, taxonomy
        )
    else:
        print(f"no fitted detector in {args.taught_catalog}: COCO mapping only")
    objects = {}
    for kind, factory in kinds.items():
        wanted = rooms if kind == "yolo" else sorted(val + heldout)
        dets = detections(kind, factory, wanted, image_of, settings)
        vecs = object_vectors(kind, dets, image_of, backbone, settings)
        objects[kind] = (dets, vecs)
    dets_y, vecs_y = objects["yolo"]
    # validation: the validation rooms' objects of every detector, pooled
    val_objects = [o for d, v in objects.values() for o in scene_objects(d, v, val)]

    # mined pairs: fit rooms for training; validation and held-out rooms only for crop recall
    mined_rooms = fit + val + heldout
    replay = {ReplayDetector.key(load_image(image_of[r])): dets_y[r] for r in mined_rooms}
    category_of = dict(zip(pids, pcats, strict=True))
    mined = mine_crop_pairs(scenes[scenes["scene_id"].isin(mined_rooms)],
                            pairs[pairs["scene_id"].isin(mined_rooms)], category_of,
                            ReplayDetector(replay), margin=settings.crop_margin)  # fmt: skip
    mined_vecs = backbone.embed_images([m.crop for m in mined])
    by_split = {"fit": set(fit), "val": set(val), "heldout": set(heldout)}
    mined_in = {
        split: [(m, v) for m, v in zip(mined, mined_vecs, strict=True) if m.scene_id in ids]
        for split, ids in by_split.items()
    }
    mined_fit = [(m.product_id, v) for m, v in mined_in["fit"]]
    print({split: len(v) for split, v in mined_in.items()}, "mined pairs")

    s_pids, s_cats, s_vecs, s_scene = synthetic_vectors(
        products, backgrounds, image_of, backbone, settings, args.scenes, args.seed
    )
    print(f"synthetic pairs: {len(s_pids)} from {args.scenes} scenes, {len(set(s_pids))} products, "
          f"{len(set(s_cats))} categories")  # fmt: skip

    def mined_crop_recall(split, transform) -> float | None:
        if not mined_in[split]:
            return None
        ms, vs = zip(*mined_in[split], strict=True)
        return crop_recall(transform(np.stack(vs)), [m.product_id for m in ms],
                           [m.category for m in ms], transform(product_vecs), pids, pcats, k=10)  # fmt: skip

    def measure(transform) -> dict:
        space = transform(product_vecs) if transform else product_vecs
        same = transform or (lambda v: v)
        out = {
            f"{split}_crop_recall10": mined_crop_recall(split, same) for split in ("val", "heldout")
        }
        out["val_pooled"] = vector_look_recall(
            val_objects, products_of, pids, pcats, space, transform, KS
        ).as_dict()
        for kind, (dets, vecs) in objects.items():
            held = scene_objects(dets, vecs, heldout)
            out[f"heldout_{kind}"] = vector_look_recall(
                held, products_of, pids, pcats, space, transform, KS
            ).as_dict()
        return out

    results = {"split": {"fit": len(fit), "val": len(val), "heldout": len(heldout),
                         "backgrounds": len(backgrounds)},
               "synthetic_pairs": len(s_pids), "mined": {k: len(v) for k, v in mined_in.items()},
               "before": measure(None), "variants": {}}  # fmt: skip
    print("before:", json.dumps(results["before"]))
    heads = {}
    for name in args.variants:
        source, n_scenes, hidden, epochs = VARIANTS[name]
        use = s_scene < (n_scenes or args.scenes)
        members = (
            [] if source == "mined" else list(zip(np.asarray(s_pids)[use].tolist(), s_vecs[use]))
        )
        members += mined_fit if source in ("mined", "both") else []
        x, labels = pair_groups(pids, product_vecs, members)

        def validate(head) -> float:
            space = head.transform(product_vecs)
            return mean_covered(
                vector_look_recall(val_objects, products_of, pids, pcats, space, head.transform, KS)
            )

        cfg = TrainConfig(residual=True, hidden=(hidden,) * 3, lr=3e-4, margin=0.1, groups_per_batch=64,
                          per_group=4 if source != "mined" else 2, steps_per_epoch=args.steps,
                          max_epochs=epochs, patience=args.patience, seed=args.seed, threads=1)  # fmt: skip
        result = train_same(x, labels, backbone=catalog.backbone, config=cfg, validate=validate,
                            trained_on={"groups": "ikea crop->product", "variant": name,
                                        "members": len(members), "split": "catalog/taught/split.py train, fit rooms"})  # fmt: skip
        heads[name] = result.head
        result.head.save(out_dir / f"head-{name}")
        row = {"members": len(members), "groups": len(set(labels)), "best_epoch": result.best_epoch,
               "val_mean_covered": round(result.best_val, 4), "seconds": round(result.seconds, 1),
               **measure(result.head.transform)}  # fmt: skip
        results["variants"][name] = row
        print(name, json.dumps(row), flush=True)
    base_val = mean_covered_from(results["before"]["val_pooled"])
    chosen = max(results["variants"], key=lambda n: results["variants"][n]["val_mean_covered"])
    results["chosen"] = chosen
    results["val_mean_covered_before"] = base_val
    print(f"chosen on validation rooms: {chosen} ({results['variants'][chosen]['val_mean_covered']:.4f} "
          f"vs {base_val:.4f} without a head)")  # fmt: skip
    import tempfile

    for kind, (dets, vecs) in objects.items():
        for label, head in (("before", None), ("after", heads[chosen])):
            with tempfile.TemporaryDirectory() as tmp:
                ev = official(products, product_vecs, head, backbone, dets, vecs, heldout, scenes, pairs,
                              image_of, settings, taxonomy, Path(tmp) / "c")  # fmt: skip
            results[f"official_{kind}_{label}"] = ev.as_dict()
            print(f"\nevaluate_looks, held-out rooms, {kind} detector, {label}\n{ev.table()}")
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"-> {out_dir}/results.json")


def mean_covered_from(d: dict) -> float:
    return round(float(np.mean([d["covered"][str(k)] for k in KS])), 4)


if __name__ == "__main__":
    main()
