"""`shopthelook catalog build|add|remove|info` and `shopthelook backbones`."""

from __future__ import annotations

import json

from shopthelook.commands import settings_from_args, show_progress
from shopthelook.commands.detector_fit import (
    add_build_arguments,
    add_fit_parser,
    fit_after_build,
    refit_notice,
)
from shopthelook.commands.scale import (
    add_compact_parser,
    add_scheduler_arguments,
    embedding_on_cluster,
)
from shopthelook.core.errors import ShopTheLookError


def register(sub) -> None:
    p = sub.add_parser("catalog", help="build and maintain a product catalog")
    csub = p.add_subparsers(dest="catalog_command", metavar="ACTION", required=True)

    b = csub.add_parser("build", help="embed a product table and index it per category")
    _source_args(b)
    b.add_argument("--out", required=True, help="catalog folder to write (replaced atomically)")
    b.add_argument("--backbone", help="embedding backbone (default: settings.backbone, 'yolo')")
    b.add_argument("--head", help="folder of a trained head (SAME) applied after the backbone")
    b.add_argument("--limit", type=int, help="only the first N products (for quick trials)")
    b.add_argument(
        "--min-kept-share",
        type=_share,
        default=0.5,
        help="refuse to replace an existing catalog with one holding fewer than this share of "
        "its products (default 0.5; 0 replaces it whatever the count)",
    )
    add_scheduler_arguments(b)
    add_build_arguments(b)
    b.set_defaults(func=cmd_build)

    a = csub.add_parser("add", help="add products to a catalog without a rebuild")
    _source_args(a)
    a.add_argument("--catalog", required=True)
    a.add_argument("--replace", action="store_true", help="update products whose id exists")
    a.set_defaults(func=cmd_add)

    r = csub.add_parser("remove", help="remove products by id")
    r.add_argument("--catalog", required=True)
    r.add_argument("product_ids", nargs="+", metavar="PRODUCT_ID")
    r.set_defaults(func=cmd_remove)

    add_compact_parser(csub)
    add_fit_parser(csub)

    i = csub.add_parser("info", help="print a catalog's manifest")
    i.add_argument("catalog")
    i.set_defaults(func=cmd_info)

    bb = sub.add_parser("backbones", help="list the embedding backbones")
    bb.set_defaults(func=cmd_backbones)


def _source_args(p) -> None:
    p.add_argument(
        "--products",
        help="product table (CSV or Parquet): product_id, image, category or taxonomy fields",
    )
    p.add_argument(
        "--dataset", help="a dataset under the data root (ikea, hm, clothing, furniture-styles)"
    )
    p.add_argument(
        "--images-root", help="folder image paths are relative to (default: the table's folder)"
    )
    p.add_argument("--data-root", help="override settings.data_root")
    p.add_argument(
        "--encoding", help="the CSV's text encoding (default utf-8; e.g. latin-1, utf-16)"
    )
    p.add_argument("--sep", help="the CSV's field separator (default ','; e.g. ';' or '\\t')")


def _share(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a share between 0 and 1, e.g. 0.5")
    return value


def _load_table(args, settings):
    from shopthelook.core.datasets import load_products

    if bool(args.products) == bool(args.dataset):
        raise ShopTheLookError("give exactly one of --products CSV or --dataset NAME")
    source = args.products or args.dataset
    sep = args.sep.encode().decode("unicode_escape") if args.sep else None  # '\t' as typed
    table = load_products(
        source,
        data_root=settings.data_root,
        images_root=args.images_root,
        encoding=args.encoding,
        sep=sep,
    )
    return table, source


def _report(counts: dict[str, int], failures: list[dict[str, str]]) -> None:
    for failure in failures[:10]:
        print(f"  skipped: {failure['error']}")
    if counts:
        listed = ", ".join(f"{c} ({n})" for c, n in sorted(counts.items())[:10])
        print(
            f"  {sum(counts.values())} product(s) in {len(counts)} categor"
            f"{'y' if len(counts) == 1 else 'ies'} the taxonomy does not know (no detected "
            f"object searches them): {listed}"
        )


def cmd_build(args) -> int:
    from catalog import Catalog
    from embedder import create_embedder
    from shopthelook.core.taxonomy import load_taxonomy

    settings = settings_from_args(
        args, backbone=args.backbone, head=args.head, data_root=args.data_root
    )
    table, source = _load_table(args, settings)
    if args.limit:
        table = table.head(args.limit)
    embedder = create_embedder(settings)
    with embedding_on_cluster(args, args.out) as embed:
        catalog = Catalog.build(
            table,
            embedder=embedder,
            taxonomy=load_taxonomy(settings.taxonomy),
            out=args.out,
            images_root=None,
            settings=settings,
            show_progress=show_progress(args),
            source=str(source),
            embed=embed,
            min_kept_share=args.min_kept_share,
        )
    m = catalog.manifest
    print(
        f"catalog {args.out}: {m['n_products']} products in {len(m['counts'])} categories, "
        f"backbone {m['backbone']} ({m['dim']}-d), {m['build_seconds']} s, "
        f"{len(m['failures'])} unreadable image(s) skipped"
    )
    _report(m.get("unknown_categories", {}), m["failures"])
    fit_after_build(catalog, args, settings)
    return 0


def cmd_add(args) -> int:
    from catalog import Catalog
    from embedder import create_embedder
    from shopthelook.core.taxonomy import load_taxonomy

    settings = settings_from_args(args, data_root=args.data_root)
    catalog = Catalog.load(args.catalog)
    settings = settings.replace(
        backbone=catalog.backbone, head=catalog.manifest.get("head_path") or ""
    )
    table, _ = _load_table(args, settings)
    result = catalog.add(
        table,
        embedder=create_embedder(settings),
        taxonomy=load_taxonomy(settings.taxonomy),
        settings=settings,
        show_progress=show_progress(args),
        replace=args.replace,
    )
    print(
        f"catalog {args.catalog}: added {result['added']} (replaced {result['replaced']}), "
        f"{len(result['failures'])} unreadable image(s) skipped; now {len(catalog)} products"
    )
    _report(result["unknown_categories"], result["failures"])
    notice = refit_notice(catalog)
    if notice:
        print(notice)
    return 0


def cmd_remove(args) -> int:
    from catalog import Catalog

    catalog = Catalog.load(args.catalog)
    n = catalog.remove(args.product_ids)
    print(f"catalog {args.catalog}: removed {n}; now {len(catalog)} products")
    return 0


def cmd_info(args) -> int:
    from catalog import Catalog

    catalog = Catalog.load(args.catalog)
    print(json.dumps(catalog.manifest, indent=2, sort_keys=True))
    return 0


def cmd_backbones(args) -> int:
    from embedder import describe_backbones

    described = describe_backbones()
    width = max(map(len, described))
    for name, summary in described.items():
        print(f"{name:<{width}}  {summary}")
    return 0
