"""Complete the look on IKEA rooms the model never saw: are the room's products of the
categories no object searched among the suggestions?

Folds are catalog/taught/split.py's (as in eval_whole_look.py): the held-out rooms are
scored by models counted and fitted on the training rooms, and (COCO detector only) the
training rooms by models of the held-out rooms. For every ground-truth product whose
category no object of its room searches (categories "other" never suggested), its rank among
its category's products is found under each method; hit-rate@K = share ranked in the top K.

    .venv/bin/python benchmarks/eval_complete_look.py --catalog catalogs/ikea-effnet-lite0

Methods: random (K / category size), popularity (rooms with the product among the training
rooms, ties in catalog order), visual (mean catalog-vector cosine with the room's set),
complete the look (``shopthelook.complete_look``: mean pairwise log-odds with the set plus
``prior`` x popularity, ``prior`` chosen on the training-fold rooms, each room's own counts
left out). The set is each object's visual top-1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval_whole_look import as_result, cached_objects, fold_models  # noqa: E402

from shopthelook.complete_look import (  # noqa: E402
    NOT_SUGGESTED,
    CompleteLookSettings,
    CompleteTheLook,
    scene_set,
    searched_categories,
)
from shopthelook.core.config import REPO_ROOT  # noqa: E402
from shopthelook.core.datasets import load_pairs  # noqa: E402
from shopthelook.core.groups import load_groups, split_groups  # noqa: E402

KS = (1, 5, 10)
PRIORS = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0)


def targets(rooms, truth, catalog, ids):
    """(room, result, set, gt product, its category) for every product to complete."""
    category = dict(zip(catalog.products["product_id"].astype(str), catalog.products["category"]))
    out = []
    for r in ids:
        result = as_result(rooms[r])
        seen = searched_categories(result)
        chosen = scene_set(result)
        for pid in sorted(truth[r]):
            c = category.get(pid)
            if c and c not in seen and c not in NOT_SUGGESTED and chosen:
                out.append((r, chosen, pid, c))
    return out


def ranks(method, items, complete, catalog, popularity, loo: bool, prior=0.0):
    """0-based rank of each target product within its category under ``method``."""
    out = []
    for room, chosen, pid, cat in items:
        exclude = room if loo else None
        if method == "coherence":
            order = [p for p, _ in complete.rank(chosen, cat, prior=prior, exclude=exclude)]
        else:
            pool = complete._by_category[cat]
            if method == "popularity":
                score = popularity.prior(pool, exclude)
            else:  # visual
                score = (catalog.embeddings(chosen) @ catalog.embeddings(pool).T).mean(0)
            order = [pool[i] for i in np.argsort(-score, kind="stable")]
        out.append(order.index(pid))
    return np.array(out)


def hits(r: np.ndarray) -> dict[str, float]:
    return {f"@{k}": float(np.mean(r < k)) if len(r) else float("nan") for k in KS}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalog", default="catalogs/ikea-effnet-lite0")
    ap.add_argument("--candidates", type=int, default=20, help="the cached objects' list length")
    ap.add_argument("--model", default="nohead", choices=("nohead", "cooc"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--heldout-only", action="store_true")
    ap.add_argument("--out", default=str(REPO_ROOT / "artifacts" / "whole-look"))
    args = ap.parse_args()
    from catalog import Catalog
    from catalog.taught.split import scene_split

    catalog = Catalog.load(args.catalog)
    cache = cached_objects(args.catalog, args.candidates)
    rooms = cache["rooms"]
    if "taught" in json.dumps(cache.get("detector")) and not args.heldout_only:
        raise SystemExit("a taught detector was fitted on the training rooms: pass --heldout-only")
    truth = load_pairs("ikea").groupby("scene_id")["product_id"].apply(set).to_dict()
    groups = load_groups("ikea-rooms")
    held = sorted(r for r in rooms if scene_split(r) == "heldout")
    train_fold = sorted(r for r in rooms if scene_split(r) == "train")
    directions = [("heldout", held, train_fold)]
    directions += [] if args.heldout_only else [("train", train_fold, held)]
    all_ranks: dict[str, list] = {"random": [], "popularity": [], "visual": [], "coherence": []}
    sizes, report = [], {"catalog": args.catalog, "folds": []}
    for name, test, other in directions:
        train, val, _ = split_groups(other, val_fraction=0.25, test_fraction=0.0, seed=args.seed)
        tag = f"{Path(args.catalog).name}-score-{name}-seed{args.seed}"
        model = fold_models(catalog, groups, train, val, test, tag, 30, args.seed)[args.model]
        complete = CompleteTheLook(catalog, model, CompleteLookSettings())
        tune_items = targets(rooms, truth, catalog, other if args.model == "nohead" else val)
        test_items = targets(rooms, truth, catalog, test)
        tune = {b: float(np.mean(ranks("coherence", tune_items, complete, catalog, model, True, b) < 10)) for b in PRIORS}  # fmt: skip
        best = max(PRIORS, key=lambda b: (tune[b], -b))
        row = {"scored": name, "targets": len(test_items), "prior": best, "tune_hit@10": tune}
        for method in ("popularity", "visual", "coherence"):
            r = ranks(method, test_items, complete, catalog, model, False, best)
            all_ranks[method].append(r)
            row[method] = hits(r)
        n = np.array([len(complete._by_category[c]) for *_, c in test_items])
        sizes.append(n)
        row["random"] = {f"@{k}": float(np.mean(np.minimum(1, k / n))) for k in KS}
        report["folds"].append(row)
        print(json.dumps(row))
    print(f"\n{'method':<12} " + " ".join(f"hit{k:<6}" for k in KS) + "  (targets: GT products of categories no object searched)")  # fmt: skip
    n = np.concatenate(sizes)
    print(f"{'random':<12} " + " ".join(f"{np.mean(np.minimum(1, k / n)):<9.3f}" for k in KS))
    lists = {m: np.concatenate(v) for m, v in all_ranks.items() if v}
    rng = np.random.default_rng(0)
    for method, r in lists.items():
        print(f"{method:<12} " + " ".join(f"{np.mean(r < k):<9.3f}" for k in KS) + f" ({len(r)} targets)")  # fmt: skip
    for base in ("popularity", "visual"):
        a, b = (lists["coherence"] < 10) * 1.0, (lists[base] < 10) * 1.0
        diffs = [np.mean(a[i] - b[i]) for i in (rng.integers(0, len(a), len(a)) for _ in range(2000))]  # fmt: skip
        lo, hi = np.percentile(diffs, [2.5, 97.5])
        report[f"coherence_minus_{base}_hit@10_95ci"] = [float(lo), float(hi)]
        print(f"coherence - {base} hit@10: {np.mean(a) - np.mean(b):+.3f} (95% bootstrap over targets {lo:+.3f} to {hi:+.3f})")  # fmt: skip
    report["overall"] = {m: hits(r) for m, r in lists.items()}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"complete-look-{Path(args.catalog).name}.json").write_text(json.dumps(report, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
