"""`shopthelook cluster check`, plus the `--scheduler` plumbing other commands reuse.

Helpers for other command modules:

* ``add_scheduler_arguments(parser)``: ``--scheduler`` and ``--partition-size``.
* ``cmd_match_distributed(args)``: the `match` job on Dask (call it when ``args.scheduler``).
* ``embedding_on_cluster(args, out)``: a context manager giving an ``embed`` callable for
  ``Catalog.build(..., embed=...)`` (None without ``--scheduler``).
* ``fit_on_cluster(args)``: a context manager giving a ``fit`` callable with ranker.train.fit's
  signature, running lightgbm.dask (None without ``--scheduler``).
* ``add_compact_parser(catalog_subparsers)``: `catalog compact`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shopthelook.commands import announce, settings_from_args, show_progress


def register(sub) -> None:
    p = sub.add_parser("cluster", help="check the Dask cluster the batch jobs would run on")
    csub = p.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    c = csub.add_parser("check", help="connect, run a task on every worker, print the workers")
    add_scheduler_arguments(c, default="local")
    c.set_defaults(func=cmd_check)


def add_scheduler_arguments(p, default: str | None = None) -> None:
    from shopthelook.distributed import SCHEDULER_HELP

    p.add_argument(
        "--scheduler",
        nargs="?",
        const="local",
        default=default,
        metavar="local[:N]|tcp://HOST:PORT",
        help=f"run on Dask: {SCHEDULER_HELP}; alone: 'local'"
        + ("" if default else " (without it: in this process)"),
    )
    p.add_argument(
        "--partition-size",
        type=int,
        default=None,
        help="items per Dask task (default: 32 scenes, 256 products)",
    )


def add_compact_parser(catalog_subparsers) -> None:
    k = catalog_subparsers.add_parser(
        "compact", help="rebuild indexes holding deleted entries or outgrown by their size"
    )
    k.add_argument("--catalog", required=True)
    k.add_argument("--all", action="store_true", help="rebuild and re-tune every index")
    k.set_defaults(func=cmd_compact)


def cmd_check(args) -> int:
    import os

    from shopthelook.distributed import dashboard_link, dask_client

    with dask_client(args.scheduler) as client:
        pids = client.run(os.getpid)
        info = client.scheduler_info(n_workers=-1)
        print(f"scheduler {info.get('address')}: {len(pids)} worker(s)")
        for address, worker in sorted(info.get("workers", {}).items()):
            memory = worker.get("memory_limit") or 0
            print(
                f"  {address}  threads {worker.get('nthreads')}  "
                f"memory {memory / 2**30:.1f} GiB  pid {pids.get(address)}"
            )
        link = dashboard_link(client)
        print(f"dashboard: {link}" if link else "dashboard: none (install bokeh to get one)")
    return 0


def cmd_compact(args) -> int:
    from catalog import Catalog

    catalog = Catalog.load(args.catalog)
    rebuilt = catalog.compact(force=args.all)
    if not rebuilt:
        print(f"catalog {args.catalog}: every index is compact")
    else:
        print(f"catalog {args.catalog}: rebuilt {len(rebuilt)} index(es)")
    for category, reason in rebuilt.items():
        spec = catalog.manifest["index_params"][category]
        tuned = f", {spec['params']}, recall@{spec['k']} {spec['recall']}" if spec["recall"] else ""
        print(f"  {category}: {reason} -> {spec['kind']}, {spec['n']} vectors{tuned}")
    return 0


def pipeline_spec(args):
    """The `match` command's pipeline flags as something a worker can rebuild it from."""
    from shopthelook.dask_jobs import MatchPipelineSpec

    settings = settings_from_args(args, detection_confidence=args.confidence)
    return MatchPipelineSpec(
        catalog=str(args.catalog),
        settings=settings,
        ranker=args.ranker,
        directions=args.directions,
        backbone=args.backbone,
    )


def cmd_match_distributed(args) -> int:
    from shopthelook.core.datasets import load_scenes
    from shopthelook.dask_jobs import distributed_match
    from shopthelook.distributed import dask_client

    spec = pipeline_spec(args)
    scenes = load_scenes(
        args.scenes, data_root=spec.settings.data_root, images_root=args.images_root
    )
    with dask_client(args.scheduler, announce=announce(args)) as client:
        summary, report = distributed_match(
            client,
            spec,
            scenes,
            args.out,
            top_k=args.top_k,
            adjective=args.adjective,
            retry_failed=args.retry_failed,
            partition_size=args.partition_size or 32,
            show_progress=show_progress(args),
        )
    for line in summary.lines() + report.lines():
        print(line)
    return 1 if report.failed else 0


@contextmanager
def embedding_on_cluster(args, out: str | Path) -> Iterator:
    """``embed(image_paths, embedder, *, settings, show_progress)`` on Dask, or None."""
    if not getattr(args, "scheduler", None):
        yield None
        return
    from shopthelook.dask_jobs import distributed_embed_products
    from shopthelook.distributed import dask_client

    out = Path(out)
    with dask_client(args.scheduler, announce=announce(args)) as client:

        def embed(image_paths, embedder, *, settings, show_progress=False):
            # workers build their own embedder from settings; ``embedder`` is the local one
            return distributed_embed_products(
                client,
                image_paths,
                settings=settings,
                work_dir=out.parent / f".{out.name}.work",
                partition_size=args.partition_size or 256,
                show_progress=show_progress,
            )

        yield embed


@contextmanager
def fit_on_cluster(args) -> Iterator:
    """``fit(X, y, sizes, valid, config) -> (booster, info)`` on lightgbm.dask, or None."""
    if not getattr(args, "scheduler", None):
        yield None
        return
    from shopthelook.dask_jobs import distributed_train_ranker
    from shopthelook.distributed import dask_client

    with dask_client(args.scheduler, announce=announce(args)) as client:
        yield functools.partial(distributed_train_ranker, client)
