"""Building the shared services from the app's config: catalog, ranker, directions, pipeline,
gallery scenes, events writer. Runs once per process, from ``web.init_app``.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import pandas as pd

from shopthelook.core.errors import ConfigError, DatasetError
from web.event_sink import EventSink
from web.scenes import SceneLibrary
from web.services import LookCache, Services
from web.uploads import UploadPolicy

log = logging.getLogger(__name__)


def image_root_of(products: pd.DataFrame) -> Path:
    """The folder holding every product photo: the only folder product images are served from."""
    folders = {str(Path(p).resolve().parent) for p in products["image"].dropna().astype(str)}
    if not folders:
        raise ConfigError("the catalog has no product images")
    root = Path(os.path.commonpath(sorted(folders)))
    if root == Path(root.anchor):
        raise ConfigError(
            "the catalog's product photos share no folder below the file-system root; keep them "
            "under one image folder so that the site can serve them safely"
        )
    return root


def _pairs_by_product(pairs: pd.DataFrame) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for sid, pid in zip(
        pairs["scene_id"].astype(str), pairs["product_id"].astype(str), strict=True
    ):
        out.setdefault(pid, []).append(sid)
    return out


def _adjectives_of(directions: Any) -> list[str]:
    if directions is None:
        return []
    for attr in ("adjectives", "names", "labels"):
        value = getattr(directions, attr, None)
        if callable(value):
            value = value()
        if value is not None:
            return [str(v) for v in value]
    return []


def _load_pipeline(config: dict[str, Any], events_url: str | Path):
    from catalog import Catalog
    from shopthelook.core.config import load_settings
    from shopthelook.pipeline import ShopTheLook

    if not config.get("CATALOG"):
        raise ConfigError(
            "no catalog: pass --catalog DIR (build one with 'shopthelook catalog build')"
        )
    settings = load_settings(config.get("SETTINGS_FILE"))
    if config.get("DATA_ROOT"):
        settings = settings.replace(data_root=Path(config["DATA_ROOT"]))
    catalog = Catalog.load(config["CATALOG"])
    ranker, note = load_ranker(config.get("RANKER"), catalog, events_url)
    directions = load_directions(config.get("DIRECTIONS"), catalog)
    pipeline = ShopTheLook(catalog, settings, ranker=ranker, directions=directions)
    return pipeline, note


def load_ranker(folder: str | Path | None, catalog, events_url: str | Path):
    """The trained ranker when one is given and loads, else visual order and a note why.

    The ranker reads live events (its own store handle on the same database) so that what a
    user clicks here shapes their next results.
    """
    try:
        from ranker.lgbm import load_ranker as load_lgbm
    except ImportError:
        from ranker.base import VisualOrderRanker

        note = "no trained ranker in this build: visual order" if folder else None
        return VisualOrderRanker(), note
    if not folder:
        return load_lgbm(None), None  # visual order, by choice: no note on the pages
    from ranker.events import EventStore

    ranker = load_lgbm(folder, catalog=catalog, events=EventStore(events_url))
    return ranker, getattr(ranker, "fallback_reason", None)


def load_directions(folder: str | Path | None, catalog):
    """Style directions for the adjective chips, checked against the catalog's space."""
    if not folder:
        return None
    from embedder.oaar import load_directions as load

    directions = load(folder)
    directions.check_space(catalog.backbone, catalog.head, catalog.dim)
    return directions


def whole_look_chooser(folder: str | Path | None, catalog):
    """The whole-look chooser: with the coherence model in ``folder``, else the visual top-1
    of every object (the pages then say "the best match for each object")."""
    from shopthelook.whole_look import chooser_for

    return chooser_for(catalog, str(folder) if folder else None)


def build_services(config: dict[str, Any], instance_path: str | Path) -> Services:
    instance = Path(instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    events_url = config.get("EVENTS") or (instance / "events.sqlite")
    pipeline = config.get("PIPELINE")
    note = None
    if pipeline is None:
        pipeline, note = _load_pipeline(config, events_url)
    data_root = config.get("DATA_ROOT") or getattr(pipeline.settings, "data_root", None)
    gallery, pairs = _gallery(config.get("SCENES", "ikea"), data_root)
    adjectives = list(
        config.get("ADJECTIVES") or _adjectives_of(getattr(pipeline, "directions", None))
    )
    scenes = SceneLibrary(
        gallery,
        Path(config.get("UPLOAD_FOLDER") or instance / "uploads"),
        upload_policy(config),
        thumbs=instance / "thumbs",
    )
    return Services(
        pipeline=pipeline,
        whole_look=whole_look_chooser(config.get("COHERENCE"), pipeline.catalog),
        scenes=scenes,
        events=EventSink(events_url),
        image_root=image_root_of(pipeline.catalog.products),
        pairs=pairs,
        adjectives=adjectives,
        max_upload_bytes=int(config["MAX_UPLOAD_BYTES"]),
        max_image_pixels=int(config["MAX_IMAGE_PIXELS"]),
        cache=LookCache(int(config.get("LOOK_CACHE_SIZE", 256))),
        ranker_note=note,
        look_slots=threading.BoundedSemaphore(max(1, int(config["LOOK_SLOTS"]))),
    )


def upload_policy(config: dict[str, Any]) -> UploadPolicy:
    return UploadPolicy(
        ttl_seconds=float(config["UPLOAD_TTL_HOURS"]) * 3600,
        per_owner=int(config["UPLOAD_QUOTA_PER_SHOPPER"]),
        total=int(config["UPLOAD_QUOTA_TOTAL"]),
        total_bytes=int(float(config["UPLOAD_QUOTA_TOTAL_MB"]) * 1024 * 1024),
        max_side=int(config["UPLOAD_MAX_SIDE"]),
        decode_slots=int(config["DECODE_SLOTS"]),
    )


def _gallery(source: Any, data_root: Any) -> tuple[pd.DataFrame | None, dict[str, list[str]]]:
    """The gallery scenes and ground-truth pairs; a site without a data root has uploads only."""
    if source is None or (isinstance(source, str) and not source):
        return None, {}
    if isinstance(source, pd.DataFrame):
        return source, {}
    from shopthelook.core import datasets

    try:
        scenes = datasets.load_scenes(source, data_root=data_root)
    except DatasetError as exc:
        log.warning("no gallery scenes: %s", exc)
        return None, {}
    pairs: dict[str, list[str]] = {}
    if datasets.is_dataset_name(source):
        try:
            pairs = _pairs_by_product(datasets.load_pairs(source, data_root=data_root))
        except DatasetError as exc:
            log.warning("no room pairs: %s", exc)
    return scenes, pairs
