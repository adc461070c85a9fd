"""`shopthelook look IMAGE` and the batch job `shopthelook match`."""

from __future__ import annotations

import json
import sys

from shopthelook.commands import MAX_TOP_K, settings_from_args, show_progress, top_k_arg
from shopthelook.commands.scale import add_scheduler_arguments, cmd_match_distributed


def register(sub) -> None:
    p = sub.add_parser("look", help="find the objects in one scene and their matching products")
    p.add_argument("image", help="scene photo")
    _pipeline_args(p)
    p.add_argument("--box", help="search this region instead of detecting: x1,y1,x2,y2 (pixels)")
    p.add_argument(
        "--category", help="with --box: the catalog category to search (default: inferred)"
    )
    p.add_argument("--user", help="user id for personalised ranking")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_look)

    m = sub.add_parser("match", help="batch job: match every scene of a table or folder")
    _pipeline_args(m)
    m.add_argument(
        "--scenes",
        required=True,
        help="scenes CSV/Parquet (scene_id or room_id, image), a folder of images, or a dataset name",
    )
    m.add_argument("--images-root", help="folder the scenes' image paths are relative to")
    m.add_argument("--out", required=True, help="JSON lines output (appended; resumable)")
    m.add_argument(
        "--retry-failed", action="store_true", help="run scenes that failed before again"
    )
    add_scheduler_arguments(m)
    m.set_defaults(func=cmd_match)


def _pipeline_args(p) -> None:
    p.add_argument("--catalog", required=True, help="catalog folder")
    p.add_argument(
        "--top-k",
        type=top_k_arg,
        default=10,
        help=f"products per object, 1-{MAX_TOP_K} (default 10)",
    )
    p.add_argument("--backbone", help="refuse the catalog unless it was built with this backbone")
    p.add_argument("--ranker", help="folder of a trained re-ranker (default: visual order)")
    p.add_argument("--adjective", help="boost results along this style direction")
    p.add_argument("--directions", help="folder of style directions (OAAR / label directions)")
    p.add_argument("--confidence", type=float, help="minimum detection confidence")
    p.add_argument(
        "--whole-look",
        action="store_true",
        help="also choose one product per object that go together (the whole look)",
    )
    p.add_argument(
        "--coherence",
        help="folder of a style-coherence model for --whole-look (shopthelook coherence train)",
    )


def build_pipeline(args):
    from catalog import Catalog
    from shopthelook.pipeline import ShopTheLook

    settings = settings_from_args(args, detection_confidence=args.confidence)
    catalog = Catalog.load(args.catalog, expected_backbone=args.backbone)
    ranker = None
    if args.ranker:
        from ranker import load_ranker

        ranker = load_ranker(args.ranker, catalog=catalog)
    directions = None
    if args.directions:
        from embedder.oaar import load_directions

        directions = load_directions(args.directions)
    return ShopTheLook(catalog, settings, ranker=ranker, directions=directions)


def whole_look_chooser(args, pipeline):
    """The whole-look chooser for --whole-look (None without it); --coherence without
    --whole-look is a mistake worth saying."""
    if not args.whole_look:
        if args.coherence:
            print("note: --coherence is only used with --whole-look", file=sys.stderr)
        return None
    from shopthelook.whole_look import chooser_for

    return chooser_for(pipeline.catalog, args.coherence)


def cmd_look(args) -> int:
    pipeline = build_pipeline(args)
    chooser = whole_look_chooser(args, pipeline)
    result = pipeline.shop_the_look(
        args.image,
        top_k=args.top_k,
        box=args.box,
        category=args.category,
        user=args.user,
        adjective=args.adjective,
    )
    look = chooser.choose(result) if chooser is not None else None
    if args.json:
        body = result.to_dict()
        if look is not None:
            body["whole_look"] = look.to_dict()
        print(json.dumps(body, indent=2))
        return 0
    print(f"{result.image} ({result.width}x{result.height}): {len(result.objects)} object(s)")
    if result.message:
        print(f"note: {result.message}")
    for n, obj in enumerate(result.objects, 1):
        d = obj.detection
        print(
            f"\n[{n}] {d.label} -> {d.category or 'any category'}  score {d.score:.2f}  "
            f"box {','.join(f'{v:.0f}' for v in d.box.as_list())}"
        )
        for rank, hit in enumerate(obj.products, 1):
            reason = f"  ({hit.reason})" if hit.reason else ""
            print(
                f"   {rank:>2}. {hit.product_id:<22} {hit.score:6.3f}  {hit.category:<12} "
                f"{(hit.name or '')[:40]}{reason}"
            )
    if look is not None:
        _print_whole_look(result, look)
    return 0


def _print_whole_look(result, look) -> None:
    score = "" if look.score is None else f"  score {look.score:.3f}"
    print(f"\nWhole look ({look.method}){score}")
    if look.message:
        print(f"note: {look.message}")
    for item in look.products:
        d = result.objects[item.object].detection
        print(
            f"   [{item.object + 1}] {d.label:<12} {item.product_id:<22} {item.score:6.3f}  "
            f"{item.category:<12} {(item.name or '')[:40]}"
        )


def cmd_match(args) -> int:
    from shopthelook.batch import run_match
    from shopthelook.core.datasets import load_scenes

    if args.scheduler:
        if args.whole_look:
            from shopthelook.core.errors import ConfigError

            raise ConfigError(
                "--whole-look runs on this machine only: drop --scheduler, or match on the "
                "cluster without --whole-look"
            )
        return cmd_match_distributed(args)
    pipeline = build_pipeline(args)
    scenes = load_scenes(
        args.scenes, data_root=pipeline.settings.data_root, images_root=args.images_root
    )
    summary = run_match(
        pipeline,
        scenes,
        args.out,
        top_k=args.top_k,
        retry_failed=args.retry_failed,
        show_progress=show_progress(args),
        adjective=args.adjective,
        whole_look=whole_look_chooser(args, pipeline),
    )
    for line in summary.lines():
        print(line)
    return 0
