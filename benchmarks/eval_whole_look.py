"""Whole look on IKEA rooms the coherence model never saw: ground-truth products in the
jointly chosen sets against those in the objects' own top-1 lists.

The rooms with ground truth are split in two folds (a fixed permutation, ``--seed``). For
each fold, a coherence model is trained on the *other* fold's rooms (a fifth of them held
back for early stopping and for choosing the coherence weight), and the whole look is scored
on this fold's rooms only. Every room is thus reported once, by a model that never saw it.
As a baseline without learning, "backbone" uses the catalog vectors' own cosine as coherence
(its weight chosen on the same validation rooms).

    .venv/bin/python benchmarks/eval_whole_look.py --catalog catalogs/ikea-effnet-lite0

Writes artifacts/whole-look/results.json, a few sets as PNGs and caches each room's objects
(detections and top-K products) in artifacts/whole-look/objects-<catalog>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedder.same import SameConfig, SameHead  # noqa: E402
from ranker.coherence import CoherenceModel, train_coherence  # noqa: E402
from shopthelook.core.config import REPO_ROOT  # noqa: E402
from shopthelook.core.datasets import load_pairs, load_scenes  # noqa: E402
from shopthelook.core.groups import load_groups, split_groups  # noqa: E402
from shopthelook.core.types import Box, Detection, LookObject, LookResult, ProductHit  # noqa: E402
from shopthelook.whole_look import WholeLookChooser, WholeLookSettings  # noqa: E402

WEIGHTS = (0.0, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5)


def cached_objects(catalog_path: str, k: int, out: Path) -> dict[str, dict]:
    """room_id -> {"image", "objects": [{"box", "label", "category", "source", "products"}]}"""
    cache = out / f"objects-{Path(catalog_path).name}-k{k}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    from shopthelook.pipeline import ShopTheLook

    stl = ShopTheLook(catalog_path)
    scenes = load_scenes("ikea")
    pairs = load_pairs("ikea")
    wanted = set(pairs["scene_id"])
    rooms: dict[str, dict] = {}
    t = time.perf_counter()
    for scene_id, image in zip(scenes["scene_id"], scenes["image"]):
        if scene_id not in wanted:
            continue
        r = stl.shop_the_look(image, top_k=k, scene_id=scene_id)
        rooms[scene_id] = {"image": image, **r.to_dict()}
    print(f"detected and searched {len(rooms)} rooms in {time.perf_counter() - t:.0f} s")
    cache.write_text(json.dumps({"detector": stl.describe()["detector"], "rooms": rooms}))
    return json.loads(cache.read_text())


def as_result(room: dict) -> LookResult:
    objects = []
    for o in room["objects"]:
        det = Detection(Box(*o["box"]), o["label"], o["score"], o["category"], (), o["source"])
        hits = [ProductHit(p["product_id"], p["score"], p["category"], p.get("name")) for p in o["products"]]  # fmt: skip
        objects.append(LookObject(det, hits))
    return LookResult(room["image"], room["width"], room["height"], objects)


def count(results, truth, chooser, weight) -> tuple[int, int, int, list[float]]:
    """(gt products in the chosen sets, in the top-1 sets, rooms, per-set seconds)"""
    chosen = top1 = 0
    seconds = []
    for room, result in results.items():
        look = chooser.choose(result, weight=weight)
        seconds.append(look.seconds)
        gt = truth[room]
        chosen += len(set(look.product_ids()) & gt)
        top1 += len({o.products[0].product_id for o in result.objects if o.products and o.detection.source != "scene"} & gt)  # fmt: skip
    return chosen, top1, len(results), seconds


def identity_model(catalog) -> CoherenceModel:
    """The catalog vectors' own cosine as coherence (a head that is the identity)."""
    d = catalog.dim
    cfg = SameConfig(backbone=catalog.backbone, dim_in=d, dim_out=d, hidden=(1, 1, 1), residual=True)  # fmt: skip
    params = {}
    for i, (o, n) in enumerate(cfg.layer_shapes()):
        params[f"layers.{i}.weight"] = np.zeros((o, n), np.float32)
        params[f"layers.{i}.bias"] = np.zeros((o,), np.float32)
    return CoherenceModel(SameHead(cfg, params), catalog.backbone, catalog.head or "", d)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalog", default="catalogs/ikea-effnet-lite0")
    ap.add_argument("--candidates", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--out", default=str(REPO_ROOT / "artifacts" / "whole-look"))
    ap.add_argument("--pngs", type=int, default=4)
    args = ap.parse_args()
    from catalog import Catalog
    from embedder.train_same import TrainConfig

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    catalog = Catalog.load(args.catalog)
    cache = cached_objects(args.catalog, args.candidates, out)
    rooms = cache["rooms"]
    pairs = load_pairs("ikea")
    truth = pairs.groupby("scene_id")["product_id"].apply(set).to_dict()
    groups = load_groups("ikea-rooms")
    room_ids = sorted(rooms)
    # two folds: a fixed permutation of the rooms
    fold_a, _, fold_b = split_groups(room_ids, val_fraction=0.0, test_fraction=0.5, seed=args.seed)
    report: dict = {"catalog": args.catalog, "detector": cache.get("detector"), "folds": []}
    totals = {"coherence": [0, 0], "backbone": [0, 0]}
    per_room: dict[str, list] = {"coherence": [], "backbone": []}
    all_seconds = []
    models = {}
    for fold, (test, other) in enumerate([(fold_a, fold_b), (fold_b, fold_a)]):
        train, val, _ = split_groups(other, val_fraction=0.25, test_fraction=0.0, seed=args.seed)
        cfg = TrainConfig(dim_out=128, max_epochs=args.epochs, patience=5, seed=args.seed)
        model = train_coherence(catalog, groups, train_groups=train, val_groups=val, test_groups=test, source="ikea-rooms", config=cfg)  # fmt: skip
        assert not (model.seen_groups() & set(test))
        models[fold] = model
        val_results = {r: as_result(rooms[r]) for r in val}
        test_results = {r: as_result(rooms[r]) for r in test}
        row = {"fold": fold, "train_rooms": len(train), "val_rooms": len(val), "test_rooms": len(test), "model": model.metrics}  # fmt: skip
        for name, m in (("coherence", model), ("backbone", identity_model(catalog))):
            chooser = WholeLookChooser(catalog, m, WholeLookSettings(candidates=args.candidates))
            tune = {w: count(val_results, truth, chooser, w)[0] for w in WEIGHTS}
            best_w = max(WEIGHTS, key=lambda w: (tune[w], -w))
            chosen, top1, n, secs = count(test_results, truth, chooser, best_w)
            all_seconds += secs if name == "coherence" else []
            for r, res in test_results.items():
                look = chooser.choose(res, weight=best_w)
                t1 = {o.products[0].product_id for o in res.objects if o.products and o.detection.source != "scene"}  # fmt: skip
                per_room[name].append((len(set(look.product_ids()) & truth[r]), len(t1 & truth[r])))
            totals[name][0] += chosen
            totals[name][1] += top1
            row[name] = {"weight": best_w, "val_by_weight": tune, "test_chosen": chosen, "test_top1": top1}  # fmt: skip
            print(f"fold {fold} {name:<9} weight {best_w:<5} test rooms {n}: ground-truth products in whole looks {chosen}, in top-1 lists {top1} ({chosen / max(1, top1):.2f}x)")  # fmt: skip
        report["folds"].append(row)
    rng = np.random.default_rng(0)
    for name, (chosen, top1) in totals.items():
        arr = np.array(per_room[name])
        boots = []
        for _ in range(2000):
            s = arr[rng.integers(0, len(arr), len(arr))]
            boots.append(s[:, 0].sum() / max(1, s[:, 1].sum()))
        lo, hi = np.percentile(boots, [2.5, 97.5])
        report[name] = {"chosen": chosen, "top1": top1, "ratio": chosen / max(1, top1), "ratio_95ci": [float(lo), float(hi)], "rooms": len(arr)}  # fmt: skip
        print(f"{name:<9} all held-out rooms ({len(arr)}): {chosen} vs {top1} = {chosen / max(1, top1):.2f}x (95% bootstrap {lo:.2f}-{hi:.2f})")  # fmt: skip
    report["seconds_per_set"] = {"median": float(np.median(all_seconds)), "p95": float(np.percentile(all_seconds, 95)), "max": float(np.max(all_seconds))}  # fmt: skip
    print("seconds per whole look:", report["seconds_per_set"])
    (out / "results.json").write_text(json.dumps(report, indent=2))
    if args.pngs:
        from whole_look_png import draw_sets  # next to this script

        draw_sets(catalog, rooms, truth, models, fold_a, fold_b, report, out, args.pngs)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
