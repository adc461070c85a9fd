"""`shopthelook serve` (the site and API on waitress) and `shopthelook demo` (build the IKEA
demo catalog and style directions into a cache folder when missing, then serve them).
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import time
from pathlib import Path

from shopthelook.commands import settings_from_args, show_progress
from shopthelook.core.errors import CatalogError, ConfigError, DatasetError, HeadError

log = logging.getLogger(__name__)

DEMO_CACHE = "catalogs/demo"
#: furniture photos per style embedded for the demo's style directions
DIRECTION_IMAGES_PER_STYLE = 60


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve the shop-the-look pages and JSON API (waitress)")
    p.add_argument("--catalog", required=True, help="catalog folder")
    _server_args(p)
    p.add_argument(
        "--events",
        help="events database: a file or sqlite:///path (default: <instance>/events.sqlite)",
    )
    p.add_argument(
        "--instance",
        default="instance",
        help="folder for uploads, thumbnails and the default events database",
    )
    p.add_argument("--directions", help="style directions folder (adjective chips)")
    p.set_defaults(func=cmd_serve)

    d = sub.add_parser("demo", help="build the IKEA demo catalog when missing, then serve it")
    d.add_argument(
        "--cache",
        default=DEMO_CACHE,
        help=f"folder for the demo catalog, directions and events (default {DEMO_CACHE})",
    )
    d.add_argument("--backbone", help="embedding backbone (default: settings.backbone)")
    d.add_argument("--limit", type=int, help="only the first N IKEA products (quick trials)")
    d.add_argument("--rebuild", action="store_true", help="rebuild the cached catalog")
    d.add_argument("--no-serve", action="store_true", help="build the cache, do not serve")
    _server_args(d)
    d.set_defaults(func=cmd_demo)


def _server_args(p) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--threads", type=int, default=8, help="request threads per worker (default 8)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port, each with its own models (default 1; "
        "one per core uses every core)",
    )
    p.add_argument(
        "--coherence",
        help="style-coherence model folder for 'Shop the whole look' (default: each "
        "object's best match)",
    )
    p.add_argument(
        "--proxy-hops",
        type=int,
        default=0,
        help="behind this many reverse proxies: trust their X-Forwarded-For/-Proto/-Host "
        "(the rate limits then see the client's address); default 0",
    )
    p.add_argument(
        "--rate-limit-storage",
        default="memory://",
        help="Flask-Limiter storage shared by the workers, e.g. redis://HOST:6379 "
        "(default memory://: counted per worker)",
    )
    p.add_argument("--ranker", help="folder of a trained re-ranker (default: visual order)")
    p.add_argument("--data-root", help="folder holding ikea/ (gallery scenes); default: settings")
    p.add_argument("--max-upload-mb", type=float, default=8.0, help="upload limit (default 8 MB)")
    p.add_argument(
        "--upload-ttl-hours",
        type=float,
        default=7 * 24,
        help="uploaded photos are deleted this long after upload (default 168; 0: never)",
    )
    p.add_argument(
        "--no-rate-limits",
        action="store_true",
        help="no per-client rate limits (for load tests on 127.0.0.1 only)",
    )


def _app_config(args, catalog: str | Path, *, events=None, instance=None, directions=None) -> dict:
    settings = settings_from_args(args, data_root=args.data_root)
    return {
        "CATALOG": str(catalog),
        "EVENTS": events,
        "INSTANCE_PATH": str(instance) if instance else None,
        "DATA_ROOT": str(settings.data_root) if settings.data_root else None,
        "RANKER": args.ranker,
        "DIRECTIONS": str(directions) if directions else None,
        "SETTINGS_FILE": getattr(args, "config", None),
        "MAX_UPLOAD_BYTES": int(args.max_upload_mb * 1024 * 1024),
        "MAX_IMAGE_PIXELS": settings.max_image_pixels,
        "UPLOAD_TTL_HOURS": args.upload_ttl_hours,
        "RATELIMIT_ENABLED": not args.no_rate_limits,
        "RATELIMIT_STORAGE_URI": args.rate_limit_storage,
        "COHERENCE": args.coherence,
        "PROXY_HOPS": args.proxy_hops,
        # lets GET /api/users/<id> show anyone's history (Authorization: Bearer <token>)
        "ADMIN_TOKEN": os.environ.get("SHOPTHELOOK_ADMIN_TOKEN") or None,
    }


def _cannot_listen(host: str, port: int, exc: OSError) -> ConfigError:
    if exc.errno == errno.EADDRINUSE:
        why = "the port is in use (another server running?); choose another --port"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        why = "not allowed (ports below 1024 need root); choose a --port above 1024"
    elif exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        why = "this machine has no such address; check --host"
    else:
        why = exc.strerror or str(exc)
    return ConfigError(f"cannot listen on {host}:{port}: {why}")


def check_port(host: str, port: int) -> None:
    """Fail at once, before minutes of loading, when the address cannot be listened on."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: give a port from 1 to 65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            if os.name != "nt":
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as waitress
            probe.bind(address)
    except OSError as exc:
        raise _cannot_listen(host, port, exc) from None


def run_server(config: dict, host: str, port: int, threads: int, workers: int = 1) -> int:
    from shopthelook.commands.workers import check_workers, run_workers

    if threads < 1:
        raise ConfigError(f"--threads {threads}: give at least 1 request thread")
    if config.get("PROXY_HOPS", 0) < 0:
        raise ConfigError(f"--proxy-hops {config['PROXY_HOPS']}: give 0 or more")
    check_workers(workers)
    check_port(host, port)
    if workers > 1:
        try:
            sock = socket.create_server((host, port), backlog=2048)
        except OSError as exc:
            raise _cannot_listen(host, port, exc) from None
        return run_workers(config, sock, host, port, threads, workers)
    import waitress

    from web import create_app

    # a service manager stops us with SIGTERM: leave like Ctrl+C, so the events writer drains
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    started = time.perf_counter()
    app = create_app(config)
    try:
        server = waitress.create_server(
            app, host=host, port=port, threads=threads, ident="shopthelook"
        )
    except OSError as exc:
        raise _cannot_listen(host, port, exc) from None
    print(
        f"models and catalog loaded in {time.perf_counter() - started:.1f} s; "
        f"serving on http://{host}:{port}/  (Ctrl+C stops)",
        flush=True,
    )
    server.run()
    return 0


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(0)


def cmd_serve(args) -> int:
    config = _app_config(
        args,
        args.catalog,
        events=args.events,
        instance=Path(args.instance),
        directions=args.directions,
    )
    return run_server(config, args.host, args.port, args.threads, args.workers)


# -- demo -----------------------------------------------------------------------------------
def cmd_demo(args) -> int:
    settings = settings_from_args(args, backbone=args.backbone, data_root=args.data_root)
    if settings.data_root is None:
        raise DatasetError(
            "the demo needs the data root (ikea/): pass --data-root or set "
            "data_root in shopthelook.toml"
        )
    cache = Path(args.cache) / f"ikea-{settings.backbone.replace(':', '_').replace('/', '_')}"
    if args.limit:
        cache = cache.with_name(f"{cache.name}-first{args.limit}")
    catalog = ensure_demo_catalog(
        settings,
        cache / "catalog",
        limit=args.limit,
        rebuild=args.rebuild,
        progress=show_progress(args),
    )
    directions = ensure_demo_directions(
        settings, catalog, cache / "directions", rebuild=args.rebuild, progress=show_progress(args)
    )
    if args.no_serve:
        print(f"demo cache ready: {cache}")
        return 0
    config = _app_config(args, catalog.path, instance=cache / "instance", directions=directions)
    return run_server(config, args.host, args.port, args.threads, args.workers)


def ensure_demo_catalog(
    settings,
    folder: Path,
    *,
    limit: int | None = None,
    rebuild: bool = False,
    progress: bool = True,
):
    """The cached IKEA catalog, built (once) when missing, stale or made with another backbone."""
    from catalog import Catalog
    from embedder import create_embedder
    from shopthelook.core.datasets import load_products
    from shopthelook.core.taxonomy import load_taxonomy

    embedder = create_embedder(settings)
    if folder.exists() and not rebuild:
        try:
            catalog = Catalog.load(folder, expected_backbone=settings.backbone)
            if catalog.dim != embedder.dim or catalog.head != embedder.head_id:
                # the same backbone name now gives other vectors (a newer version of it)
                raise CatalogError(
                    f"built with {catalog.dim}-d vectors (head {catalog.head}), backbone "
                    f"{settings.backbone!r} now gives {embedder.dim}-d (head {embedder.head_id})"
                )
            print(f"demo catalog: {folder} ({len(catalog)} products, cached)")
            return catalog
        except CatalogError as exc:
            print(f"demo catalog {folder} is unusable ({exc}); rebuilding it")

    table = load_products("ikea", data_root=settings.data_root)
    if limit:
        table = table.head(limit)
    print(
        f"building the demo catalog: {len(table)} IKEA products with backbone "
        f"{settings.backbone!r} into {folder} (once; later runs reuse it)",
        flush=True,
    )
    catalog = Catalog.build(
        table,
        embedder=embedder,
        taxonomy=load_taxonomy(settings.taxonomy),
        out=folder,
        settings=settings,
        show_progress=progress,
        source="ikea",
    )
    print(f"demo catalog built in {catalog.manifest['build_seconds']} s")
    return catalog


def ensure_demo_directions(
    settings, catalog, folder: Path, *, rebuild: bool = False, progress: bool = True
) -> Path | None:
    """Style directions from the furniture-styles photos (label directions, seed 001's OAAR
    idea for a backbone without text), in the catalog's space; None when that data is absent.
    """
    from embedder.oaar import label_directions, load_directions

    if (folder / "directions.json").exists() and not rebuild:
        try:
            load_directions(folder).check_space(catalog.backbone, catalog.head, catalog.dim)
            return folder
        except (HeadError, ConfigError) as exc:
            print(f"demo directions {folder} are unusable ({exc}); rebuilding them")
    from catalog import embed_products
    from embedder import create_embedder
    from shopthelook.core.datasets import load_products

    try:
        styles = load_products("furniture-styles", data_root=settings.data_root)
    except DatasetError as exc:
        print(f"no style chips: {exc}")
        return None
    sample = styles.groupby("style").head(DIRECTION_IMAGES_PER_STYLE).reset_index(drop=True)
    print(f"building style directions from {len(sample)} furniture-styles photos", flush=True)
    embedder = create_embedder(
        settings.replace(backbone=catalog.backbone, head=catalog.manifest.get("head_path") or "")
    )
    vectors, ok, failures = embed_products(
        sample["image"].tolist(), embedder, settings=settings, show_progress=progress
    )
    if failures:
        print(f"  {len(failures)} unreadable furniture photo(s) skipped")
    names = sample["style"].iloc[ok].str.replace("_", " ").str.replace("-", " ")
    directions = label_directions(
        vectors,
        names.tolist(),
        None,
        backbone=catalog.backbone,
        head_id=catalog.head,
        min_items=5,
        source={"dataset": "furniture-styles", "per_style": DIRECTION_IMAGES_PER_STYLE},
    )
    directions.save(folder)
    return folder
