"""Everything the pages and the API share, built once per process by ``create_app``.

The pipeline (detector, embedder, catalog, ranker), the scene library, the events writer and a
small cache of look results. Flask-free, so the benchmark and the tests can use it directly.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from shopthelook.core.errors import CatalogError
from shopthelook.core.types import Box, LookResult
from web.event_sink import EventSink
from web.scenes import SceneLibrary

log = logging.getLogger(__name__)

USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
ANONYMOUS = "anonymous"
#: the cookie that remembers who is shopping
USER_COOKIE = "stl_user"
#: where ``init_app`` keeps the Services in ``app.extensions``
EXTENSION = "shopthelook"


def valid_user_id(user_id: str | None) -> bool:
    return bool(user_id) and bool(USER_ID.match(str(user_id)))


class LookCache:
    """LRU cache of look results; a user's entries are dropped when their history changes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple, LookResult] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple) -> LookResult | None:
        with self._lock:
            result = self._items.get(key)
            if result is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return result

    def put(self, key: tuple, result: LookResult) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = result
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def forget_user(self, user_id: str) -> None:
        with self._lock:
            for key in [k for k in self._items if k[0] == user_id]:
                del self._items[key]


@dataclass
class Look:
    """One answered look: the result, the scene it belongs to and one list id per object."""

    result: LookResult
    scene_id: str
    user_id: str
    request_id: str
    cached: bool = False

    def list_id(self, object_index: int) -> str:
        # one id per shown list, so a click can be joined to the impressions it came from
        return f"{self.request_id}-{object_index}"


@dataclass(frozen=True)
class ProductInfo:
    public: dict[str, Any]
    category: str | None
    price: float | None
    image_relpath: str | None

    @classmethod
    def of(cls, record: dict[str, Any], image_root: Path) -> ProductInfo:
        public: dict[str, Any] = {}
        for key, value in record.items():
            if key in ("image", "row_id"):
                continue  # no server paths leave the site
            if isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, float) and not np.isfinite(value):
                value = None
            if value is None or isinstance(value, (str, int, float, bool)):
                public[key] = value
            else:
                public[key] = str(value)
        try:
            price = float(record.get("price"))
            price = price if np.isfinite(price) and price >= 0 else None
        except (TypeError, ValueError):
            price = None
        # the shop's own page for the product: only a web address is a link anyone may follow;
        # it is "buy_url" for clients, because "url" is this site's product page
        link = public.pop("url", None)
        if isinstance(link, str) and link.strip().lower().startswith(("https://", "http://")):
            public["buy_url"] = link.strip()
        relpath = None
        if record.get("image"):
            try:
                relpath = Path(record["image"]).resolve().relative_to(image_root).as_posix()
            except ValueError:
                relpath = None
        category = record.get("category")
        return cls(public, None if category is None else str(category), price, relpath)


@dataclass
class Services:
    pipeline: Any
    scenes: SceneLibrary
    events: EventSink
    image_root: Path
    pairs: dict[str, list[str]] = field(default_factory=dict)
    adjectives: list[str] = field(default_factory=list)
    max_upload_bytes: int = 8 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    cache: LookCache = field(default_factory=lambda: LookCache(256))
    ranker_note: str | None = None
    #: pipeline runs at the same time (each decodes its photo and holds its pixels)
    look_slots: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(4), repr=False
    )
    #: chooses one product per object that go together (shopthelook.whole_look)
    whole_look: Any = None
    _products: dict[str, ProductInfo] = field(default_factory=dict, repr=False)

    @property
    def catalog(self):
        return self.pipeline.catalog

    @property
    def ranker_name(self) -> str:
        ranker = self.pipeline.ranker
        return getattr(ranker, "name", type(ranker).__name__)

    # -- looks ------------------------------------------------------------------------
    def look(
        self,
        scene_id: str,
        *,
        user_id: str,
        box: Box | None = None,
        adjective: str | None = None,
        top_k: int = 10,
        category: str | None = None,
    ) -> Look:
        """Detect, retrieve and rank for a known scene (UnknownScene if it is not)."""
        scene = self.scenes.get(scene_id)
        key = (
            user_id,
            scene.scene_id,
            tuple(box.as_list()) if box else None,
            adjective,
            int(top_k),
            category,
        )
        result = self.cache.get(key)
        cached = result is not None
        if result is None:
            with self.look_slots:
                result = self._shop(scene, user_id, box, adjective, top_k, category)
            self.cache.put(key, result)
        return Look(result, scene.scene_id, user_id, uuid.uuid4().hex[:16], cached)

    def _shop(self, scene, user_id, box, adjective, top_k, category) -> LookResult:
        return self.pipeline.shop_the_look(
            str(scene.image),
            top_k=top_k,
            user=None if user_id == ANONYMOUS else user_id,
            box=box,
            adjective=adjective,
            scene_id=scene.scene_id,
            scene_category=scene.category,
            category=category,
            name=scene.scene_id,
        )

    def choose_whole_look(self, result: LookResult):
        """The whole look of a result (a WholeLook), with the visual fallback when no chooser
        was configured."""
        if self.whole_look is None:
            from shopthelook.whole_look import WholeLookChooser

            self.whole_look = WholeLookChooser(self.catalog)
        return self.whole_look.choose(result)

    def impressions(self, look: Look, object_indexes: list[int] | None = None) -> int:
        """Queue one impression per shown product; returns how many were queued."""
        objects = look.result.objects
        indexes = range(len(objects)) if object_indexes is None else object_indexes
        now = datetime.now(UTC)
        events = [
            {
                "event_type": "impression",
                "user_id": look.user_id,
                "product_id": hit.product_id,
                "ts": now,
                "scene_id": look.scene_id,
                "category": hit.category,
                "position": pos,
                "request_id": look.list_id(i),
                "price": self.price(hit.product_id),
            }
            for i in indexes
            if 0 <= i < len(objects)
            for pos, hit in enumerate(objects[i].products)
        ]
        self.events.log(events)
        return len(events)

    def list_impressions(
        self, user_id: str, product_ids: list[str], request_id: str, scene_id: str | None = None
    ) -> int:
        now = datetime.now(UTC)
        events = [
            {
                "event_type": "impression",
                "user_id": user_id,
                "product_id": pid,
                "ts": now,
                "scene_id": scene_id,
                "category": self.category(pid),
                "position": pos,
                "request_id": request_id,
                "price": self.price(pid),
            }
            for pos, pid in enumerate(product_ids)
        ]
        self.events.log(events)
        return len(events)

    def engagement(
        self,
        event_type: str,
        *,
        user_id: str,
        product_id: str,
        scene_id: str | None = None,
        position: int | None = None,
        request_id: str | None = None,
        wait: bool = True,
    ) -> None:
        """Log a click / save / purchase; the user's cached looks are re-ranked next time."""
        event = {
            "event_type": event_type,
            "user_id": user_id,
            "product_id": product_id,
            "ts": datetime.now(UTC),
            "scene_id": scene_id,
            "category": self.category(product_id),
            "position": position,
            "request_id": request_id,
            "price": self.price(product_id),
        }
        done = self.events.log([event])
        self.cache.forget_user(user_id)
        if wait:
            done.result(timeout=30)

    # -- products ---------------------------------------------------------------------
    def info(self, product_id: str) -> ProductInfo | None:
        """What the pages need of a product, read from the catalog once (None: unknown id)."""
        info = self._products.get(product_id)
        if info is None:
            if not self.catalog.has_product(product_id):
                return None
            info = ProductInfo.of(self.catalog.product(product_id), self.image_root)
            self._products[product_id] = info  # a racing thread stores an equal value
        return info

    def category(self, product_id: str) -> str | None:
        info = self.info(product_id)
        return info.category if info else None

    def price(self, product_id: str) -> float | None:
        info = self.info(product_id)
        return info.price if info else None

    def image_relpath(self, product_id: str) -> str | None:
        """The product photo's path below the image root, as used in its URL."""
        info = self.info(product_id)
        return info.image_relpath if info else None

    def similar(self, product_id: str, k: int = 8) -> list[tuple[str, float]]:
        """The visually closest products of the same category (the product itself excluded)."""
        product = self.catalog.product(product_id)
        vector = self.catalog.embeddings([product_id])
        found = self.catalog.search(vector, str(product["category"]), k + 1)[0]
        return [(pid, score) for pid, score in found if pid != product_id][:k]

    def rooms_with(self, product_id: str) -> list[str]:
        return [sid for sid in self.pairs.get(str(product_id), []) if self.scenes.has(sid)]

    def public_product(self, product_id: str) -> dict[str, Any]:
        """The product's fields fit for a client: JSON types, no server paths."""
        info = self.info(product_id)
        if info is None:
            raise CatalogError(f"product {product_id!r} is not in the catalog")
        return dict(info.public)

    def describe(self) -> dict[str, Any]:
        catalog = self.catalog
        return {
            "catalog": {
                "name": catalog.path.name if catalog.path else None,  # no server paths
                "products": len(catalog),
                "categories": len(catalog.categories()),
                "backbone": catalog.backbone,
                "head": catalog.head,
            },
            "ranker": {"name": self.ranker_name, "note": self.ranker_note},
            "scenes": len(self.scenes),
            "adjectives": self.adjectives,
            "events": self.events.health(),
            "cache": {"hits": self.cache.hits, "misses": self.cache.misses},
        }

    def close(self) -> None:
        self.events.close()


def services_of(app: Any) -> Services:
    """The Services that ``init_app`` attached to a Flask app."""
    return app.extensions[EXTENSION]
