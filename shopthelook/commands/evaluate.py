"""`shopthelook eval looks`: look-recall@K of a catalog on scenes with ground-truth pairs."""

from __future__ import annotations

import json

from shopthelook.commands import show_progress


def register(sub) -> None:
    p = sub.add_parser("eval", help="measure match quality")
    esub = p.add_subparsers(dest="eval_command", metavar="WHAT", required=True)
    e = esub.add_parser(
        "looks", help="look-recall@K on scenes with ground-truth (scene, product) pairs"
    )
    e.add_argument("--catalog", required=True)
    e.add_argument("--scenes", help="scenes CSV (scene_id or room_id, image)")
    e.add_argument("--pairs", help="pairs CSV (scene_id or room_id, product_id)")
    e.add_argument("--dataset", help="take scenes and pairs from a dataset (ikea)")
    e.add_argument("--images-root", help="folder the scenes' image paths are relative to")
    e.add_argument("--ks", default="1,5,10,20", help="comma-separated K values")
    e.add_argument("--json", action="store_true", help="print JSON")
    e.add_argument("--ranker", help="folder of a trained re-ranker")
    e.add_argument("--backbone", help="refuse the catalog unless built with this backbone")
    e.add_argument("--confidence", type=float, help="minimum detection confidence")
    e.add_argument(
        "--split",
        choices=("all", "heldout", "train"),
        default="all",
        help="only these scenes of the fixed split (catalog.taught.split): heldout = never "
        "used to fit or tune a detector",
    )
    e.set_defaults(func=cmd_eval_looks, top_k=20, adjective=None, directions=None)


def cmd_eval_looks(args) -> int:
    from shopthelook.commands.look import build_pipeline
    from shopthelook.core.datasets import load_pairs, load_scenes
    from shopthelook.core.errors import ShopTheLookError
    from shopthelook.evaluate import evaluate_looks

    if not args.dataset and not (args.scenes and args.pairs):
        raise ShopTheLookError("give --dataset ikea, or both --scenes CSV and --pairs CSV")
    pipeline = build_pipeline(args)
    root = pipeline.settings.data_root
    scenes = load_scenes(args.scenes or args.dataset, data_root=root, images_root=args.images_root)
    pairs = load_pairs(args.pairs or args.dataset, data_root=root)
    ks = tuple(int(k) for k in args.ks.split(","))
    from catalog.taught import select_scenes

    chosen = set(select_scenes(scenes["scene_id"].astype(str), args.split))
    result = evaluate_looks(
        pipeline, scenes, pairs, ks=ks, show_progress=show_progress(args), scene_ids=chosen
    )
    if args.json:
        described = pipeline.describe()
        report = dict(result.as_dict(), split=args.split, detector=described["detector"])
        print(json.dumps(report, indent=2))
    else:
        print(
            f"catalog {args.catalog} ({pipeline.catalog.backbone}): {result.scenes} scenes, "
            f"{result.scenes_failed} failed, {result.objects_per_scene:.1f} objects/scene, "
            f"{result.pairs_not_in_catalog} pairs' products not in the catalog"
        )
        print(
            f"split {args.split}; detector {pipeline.describe()['detector']}: coverage "
            f"{result.overall.as_dict()['coverage']:.3f}, category precision "
            f"{result.category_precision:.3f}, {result.objects_per_scene:.1f} objects/scene"
        )
        if pipeline.detector_note:
            print(f"note: {pipeline.detector_note}")
        print(result.table())
        print(
            "R@K: look-recall@K; rnd: the same protocol with random vectors (exact expectation); "
            "cover: the scene has an object that searches the pair's category"
        )
    return 0
