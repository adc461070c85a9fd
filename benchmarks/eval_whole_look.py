"""Whole look on IKEA rooms the coherence model never saw: ground-truth products in the
jointly chosen sets against those in the objects' own top-1 lists.

Folds are catalog/taught/split.py's training and held-out rooms (with ground truth: 101 and
53). The held-out rooms are scored by models trained on the training rooms and (COCO detector
only; ``--heldout-only`` otherwise, required for a catalog with a taught detector, which was
fitted on the training rooms) the training rooms by models of the held-out rooms. Within the
training fold a quarter of the rooms is held back: the SAME head never sees them, the pairwise
weights are fitted on them and every variant's weight / prior is chosen on them (the "no head"
variants, whose features are all out of sample with each room's own counts left out, are
fitted and tuned on all training-fold rooms). Every variant is in VARIANTS.

    .venv/bin/python benchmarks/eval_whole_look.py --catalog catalogs/ikea-effnet-lite0
    .venv/bin/python benchmarks/eval_whole_look.py --catalog catalogs/ikea-effnet-lite0-taught \
        --heldout-only

Writes artifacts/whole-look/results-<catalog>.json and a few sets as PNGs; caches each room's
objects (detections and top-20 products) and the SAME heads under artifacts/cache/wholelook/.
"""

from __future__ import annotations

import argparse
import copy
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

CACHE = REPO_ROOT / "artifacts" / "cache" / "wholelook"
WEIGHTS = (0.0, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5)


def cached_objects(catalog_path: str, k: int, out: Path | None = None) -> dict[str, dict]:
    """room_id -> {"image", "objects": [{"box", "label", "category", "source", "products"}]}"""
    out = out or CACHE
    out.mkdir(parents=True, exist_ok=True)
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


def identity_model(catalog) -> CoherenceModel:
    """The catalog vectors' own cosine as coherence (a head that is the identity)."""
    d = catalog.dim
    cfg = SameConfig(backbone=catalog.backbone, dim_in=d, dim_out=d, hidden=(1, 1, 1), residual=True)  # fmt: skip
    params = {}
    for i, (o, n) in enumerate(cfg.layer_shapes()):
        params[f"layers.{i}.weight"] = np.zeros((o, n), np.float32)
        params[f"layers.{i}.bias"] = np.zeros((o,), np.float32)
    return CoherenceModel(SameHead(cfg, params), catalog.backbone, catalog.head or "", d)


class Memo:
    """A coherence model whose pair logits and priors are computed once per room."""

    def __init__(self, model) -> None:
        self.model, self._logits, self._prior = model, {}, {}

    def check_catalog(self, catalog) -> None:
        self.model.check_catalog(catalog)

    def pair_logits(self, catalog, ids, exclude=None):
        key = (tuple(ids), exclude)
        if key not in self._logits:
            self._logits[key] = self.model.pair_logits(catalog, ids, exclude=exclude)
        return self._logits[key]

    def prior(self, ids, exclude=None):
        key = (tuple(ids), exclude)
        if key not in self._prior:
            self._prior[key] = self.model.prior(ids, exclude)
        return self._prior[key]


def top1_ids(result: LookResult) -> set[str]:
    return {o.products[0].product_id for o in result.objects if o.products and o.detection.source != "scene"}  # fmt: skip


def per_room(results, truth, chooser, weight, prior, loo: bool) -> list[tuple[int, int]]:
    """(gt products in the whole look, in the top-1s) per room; ``loo``: each room's own
    co-occurrence counts left out (it is one of the model's training groups)."""
    out = []
    for room, result in results.items():
        look = chooser.choose(result, weight=weight, prior=prior, exclude=room if loo else None)
        out.append((len(set(look.product_ids()) & truth[room]), len(top1_ids(result) & truth[room])))  # fmt: skip
    return out


WEIGHTS = (0.0, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
PRIORS = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1)
Z = 20.0  # a z-calibrated object spreads its scores ~20x wider than raw cosines
#: name -> (model, chooser settings, weights, priors)
VARIANTS = {
    "backbone cosine, no learning": ("identity", {}, WEIGHTS, (0.0,)),
    "learned, no co-occurrence": ("nocooc", {}, WEIGHTS, (0.0,)),
    "learned + co-occurrence": ("cooc", {}, WEIGHTS, (0.0,)),
    "popularity prior alone (per object, no joint choice)": ("cooc", {}, (0.0,), PRIORS),
    "learned + co-occurrence + prior": ("cooc", {}, WEIGHTS, PRIORS),
    "learned + co-occurrence + prior, z-calibrated": (
        "cooc",
        {"calibration": "z"},
        tuple(w * Z for w in WEIGHTS),
        tuple(p * Z for p in PRIORS),
    ),  # fmt: skip
    "learned + co-occurrence + prior, top-20": ("cooc", {"candidates": 20}, WEIGHTS, PRIORS),
    # no SAME head: every feature is out of sample on the training rooms themselves (counts
    # leave the room out), so weights are fitted and tuned on all training-fold rooms
    "no head: fields + co-occurrence, tuned on all training rooms": (
        "nohead",
        {},
        WEIGHTS,
        (0.0,),
    ),  # fmt: skip
    "no head + prior, tuned on all training rooms": ("nohead", {}, WEIGHTS, PRIORS),
    "no head + prior, top-20, tuned on all training rooms": (
        "nohead",
        {"candidates": 20},
        WEIGHTS,
        PRIORS,
    ),  # fmt: skip
    "no head + prior, z-calibrated, tuned on all training rooms": (
        "nohead",
        {"calibration": "z"},
        tuple(w * Z for w in WEIGHTS),
        tuple(p * Z for p in PRIORS),
    ),  # fmt: skip
}


def fold_models(catalog, groups, train, val, test, tag: str, epochs: int, seed: int) -> dict:
    """The SAME head is trained once per fold (cached); pairwise weights are refitted."""
    from embedder.train_same import TrainConfig
    from ranker.coherence import load_coherence
    from ranker.coherence_pairs import fit_pairwise

    folder = CACHE / "models" / tag
    cfg = TrainConfig(dim_out=128, max_epochs=epochs, patience=5, seed=seed)
    if (folder / "coherence.json").exists():
        model = load_coherence(folder, catalog)
        assert model.trained_on["train_groups"] == sorted(train) and model.trained_on["val_groups"] == sorted(val)  # fmt: skip
        fit_pairwise(model, catalog, groups_of(catalog, groups, val), seed=seed)
    else:
        model = train_coherence(catalog, groups, train_groups=train, val_groups=val, test_groups=test, source="ikea-rooms", config=cfg)  # fmt: skip
        model.save(folder)
    assert not (model.seen_groups() & set(test))
    plain = copy.copy(model)
    plain.cooccurrence = None
    fit_pairwise(plain, catalog, groups_of(catalog, groups, val), seed=seed)
    nohead = identity_model(catalog)
    nohead.cooccurrence = model.cooccurrence  # counted over train + val rooms
    fit_pairwise(nohead, catalog, groups_of(catalog, groups, [*train, *val]), seed=seed, drop=("head_cos",))  # fmt: skip
    return {"cooc": model, "nocooc": plain, "identity": identity_model(catalog), "nohead": nohead}


def groups_of(catalog, groups, ids):
    from ranker.coherence import catalog_groups

    table = catalog_groups(catalog, groups)
    return table[table["group"].astype(str).isin(set(ids))]


def bootstrap(arr: np.ndarray, n: int = 2000) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    boots = [s[:, 0].sum() / max(1, s[:, 1].sum()) for s in (arr[rng.integers(0, len(arr), len(arr))] for _ in range(n))]  # fmt: skip
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return float(lo), float(hi)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalog", default="catalogs/ikea-effnet-lite0")
    ap.add_argument("--candidates", type=int, default=20, help="products cached per object")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--heldout-only", action="store_true", help="score only catalog/taught/split.py's held-out rooms (required for a taught detector)")  # fmt: skip
    ap.add_argument("--variants", nargs="*", help="names of VARIANTS to run (default all)")
    ap.add_argument("--out", default=str(REPO_ROOT / "artifacts" / "whole-look"))
    ap.add_argument("--pngs", type=int, default=4)
    args = ap.parse_args()
    from catalog import Catalog
    from catalog.taught.split import scene_split

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    catalog = Catalog.load(args.catalog)
    cache = cached_objects(args.catalog, args.candidates)
    rooms, detector = cache["rooms"], cache.get("detector")
    taught = "taught" in json.dumps(detector)
    if taught and not args.heldout_only:
        raise SystemExit("this catalog's detector was fitted on the taught split's training rooms: pass --heldout-only")  # fmt: skip
    truth = load_pairs("ikea").groupby("scene_id")["product_id"].apply(set).to_dict()
    groups = load_groups("ikea-rooms")
    fold_train = sorted(r for r in rooms if scene_split(r) == "train")
    fold_held = sorted(r for r in rooms if scene_split(r) == "heldout")
    directions = [("heldout", fold_held, fold_train)] + ([] if args.heldout_only else [("train", fold_train, fold_held)])  # fmt: skip
    names = args.variants or list(VARIANTS)
    report: dict = {"catalog": args.catalog, "detector": detector, "objects_per_room": float(np.mean([len(r["objects"]) for r in rooms.values()])), "folds": [], "variants": {}}  # fmt: skip
    scored: dict[str, list] = {n: [] for n in names}
    pngs = []
    for scored_fold, test, other in directions:
        train, val, _ = split_groups(other, val_fraction=0.25, test_fraction=0.0, seed=args.seed)
        tag = f"{Path(args.catalog).name}-score-{scored_fold}-seed{args.seed}"
        models = fold_models(catalog, groups, train, val, test, tag, args.epochs, args.seed)
        val_res = {r: as_result(rooms[r]) for r in val}
        train_res = {r: as_result(rooms[r]) for r in train}
        test_res = {r: as_result(rooms[r]) for r in test}
        headroom = sum(len({p.product_id for o in res.objects for p in o.products[:10]} & truth[r]) for r, res in test_res.items())  # fmt: skip
        row = {"scored": scored_fold, "train_rooms": len(train), "val_rooms": len(val), "test_rooms": len(test), "headroom_top10": headroom, "model": models["cooc"].metrics, "coef": models["cooc"].coef, "coef_nocooc": models["nocooc"].coef}  # fmt: skip
        print(f"scoring {scored_fold} rooms ({len(test)}), model trained on {len(train)} + {len(val)} rooms; coef {models['cooc'].coef}")  # fmt: skip
        for name in names:
            kind, settings, weights, priors = VARIANTS[name]
            chooser = WholeLookChooser(catalog, Memo(models[kind]), WholeLookSettings(**{"candidates": 10, **settings}))  # fmt: skip
            tune_res = {**val_res, **train_res} if kind == "nohead" else val_res
            tune = {(w, b): sum(c for c, _ in per_room(tune_res, truth, chooser, w, b, loo=True)) for w in weights for b in priors}  # fmt: skip
            (w, b) = max(tune, key=lambda k: (tune[k], -k[0], -k[1]))
            rows = per_room(test_res, truth, chooser, w, b, loo=False)
            scored[name] += rows
            chosen, top1 = map(sum, zip(*rows))
            row[name] = {"weight": w, "prior": b, "val_best": tune[(w, b)], "val_visual": tune.get((0.0, 0.0)), "test_chosen": chosen, "test_top1": top1}  # fmt: skip
            print(f"  {name:<55} weight {w:<6} prior {b:<6} val {tune[(w, b)]} (visual {tune.get((0.0, 0.0))}); test {chosen} vs {top1} = {chosen / max(1, top1):.2f}x")  # fmt: skip
            pngs.append((name, test, chooser, w, b))
        report["folds"].append(row)
    for name in names:
        arr = np.array(scored[name])
        lo, hi = bootstrap(arr)
        chosen, top1 = int(arr[:, 0].sum()), int(arr[:, 1].sum())
        report["variants"][name] = {"chosen": chosen, "top1": top1, "ratio": chosen / max(1, top1), "ratio_95ci": [lo, hi], "rooms": len(arr)}  # fmt: skip
        print(f"{name:<55} {len(arr)} held-out rooms: {chosen} vs {top1} = {chosen / max(1, top1):.2f}x (95% bootstrap {lo:.2f}-{hi:.2f})")  # fmt: skip
    stem = f"results-{Path(args.catalog).name}"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str))
    if args.pngs:
        from whole_look_png import draw_sets  # next to this script

        best = max(names, key=lambda n: report["variants"][n]["ratio"])
        draw_sets(catalog, rooms, truth, [p for p in pngs if p[0] == best], out, args.pngs, Path(args.catalog).name)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
