"""Shop the look: detect -> crop -> embed -> search each object's categories -> rank.

Models load once, when the ShopTheLook object is made; one object serves many scenes (the
CLI's batch job, the web app's requests).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from catalog import Catalog, weights_fingerprint
from catalog.files import fingerprint_mismatches
from shopthelook.core.config import Settings, apply_threads, load_settings
from shopthelook.core.errors import CatalogError
from shopthelook.core.images import ImageSource, crop, load_image
from shopthelook.core.taxonomy import Taxonomy, load_taxonomy
from shopthelook.core.types import Box, Detection, LookObject, LookResult, ProductHit

log = logging.getLogger(__name__)

#: candidates fetched per object for a re-ranker to choose from
RERANK_CANDIDATES = 50
NOTHING_DETECTED = "nothing detected: searched the whole scene instead"


class ShopTheLook:
    def __init__(
        self,
        catalog: Catalog | str | Path,
        settings: Settings | None = None,
        *,
        detector=None,
        embedder=None,
        ranker=None,
        taxonomy: Taxonomy | None = None,
        directions=None,
    ) -> None:
        from ranker.base import VisualOrderRanker

        self.settings = settings or load_settings()
        self.catalog = catalog if isinstance(catalog, Catalog) else Catalog.load(catalog)
        self.taxonomy = taxonomy or load_taxonomy(self.settings.taxonomy)
        self.embedder = embedder or self._embedder_for_catalog()
        if self.embedder.name != self.catalog.backbone or self.embedder.dim != self.catalog.dim:
            raise CatalogError(
                f"catalog {self.catalog.path} was built with backbone {self.catalog.backbone!r} "
                f"({self.catalog.dim}-d) but the embedder is {self.embedder.name!r} "
                f"({self.embedder.dim}-d); rebuild the catalog or choose its backbone"
            )
        if self.embedder.head_id != self.catalog.head:
            raise CatalogError(
                f"catalog {self.catalog.path} was built with head {self.catalog.head!r} but the "
                f"embedder uses {self.embedder.head_id!r}; rebuild the catalog with this head"
            )
        built_with = self.catalog.manifest.get("weights_sha256")
        now = weights_fingerprint(self.catalog.backbone, self.settings.detector_weights)
        if embedder is None and built_with and now and built_with != now:
            raise CatalogError(
                f"catalog {self.catalog.path} was embedded with other YOLO weights than "
                f"{self.settings.detector_weights}; rebuild it or set detector_weights back"
            )
        fingerprints = getattr(self.embedder, "weights_fingerprints", dict)()
        changed = fingerprint_mismatches(self.catalog.manifest, fingerprints)
        if changed:
            raise CatalogError(
                f"catalog {self.catalog.path} was embedded with other weights for "
                f"{', '.join(changed)} than this embedder loads; rebuild the catalog or point "
                "the settings back at the weights it was built with"
            )
        #: why the catalog's own detector is not used (None when it is, or one was given)
        self.detector_note: str | None = None
        if detector is None:
            detector, self.detector_note = self._detector_for_catalog()
        self.detector = detector
        self.ranker = ranker or VisualOrderRanker()
        if directions is not None:
            directions.check_space(self.catalog.backbone, self.catalog.head, self.catalog.dim)
        self.directions = directions
        self._lock = threading.Lock()  # torch modules are shared; one scene at a time
        products = self.catalog.products
        self._names = dict(zip(products["product_id"], products["name"]))
        self._categories = dict(zip(products["product_id"], products["category"]))
        self._images = dict(zip(products["product_id"], products["image"]))
        apply_threads(self.settings.threads)

    def _detector_for_catalog(self):
        """The catalog's fitted detector (``detector`` auto or taught), else the configured
        kind; with the reason when a catalog's own detector is not used."""
        import catalog.taught  # noqa: F401  (registers the taught and zero-shot kinds)
        from catalog.taught import has_detector, load_catalog_detector
        from detector import create_detector

        kind, note = self.settings.detector, None
        if kind in ("auto", "taught") and not self.settings.taught_detector:
            path = self.catalog.path
            fitted = has_detector(path)
            if fitted:
                try:
                    return load_catalog_detector(self.catalog, self.settings, self.taxonomy), None
                except CatalogError as exc:
                    if kind == "taught":
                        raise
                    note = f"{exc}; meanwhile objects are named by the COCO label mapping"
            elif kind == "taught":
                raise CatalogError(
                    f"catalog {path} has no fitted detector: run "
                    f"'shopthelook catalog fit-detector --catalog {path}'"
                )
            else:
                # the default: measured better than the taught detector (README)
                note = (
                    f"catalog {path} has no fitted detector: objects are named by the COCO label "
                    f"mapping (fit one: shopthelook catalog fit-detector --catalog {path})"
                )
            kind = "yolo"
            # a fashion catalog's garment model: persons become the garments they wear
            from catalog.taught.garment_files import has_garments, with_garments

            if not fitted and has_garments(path):
                base = create_detector(self.settings, self.taxonomy, kind=kind)
                found, note = with_garments(base, self.catalog, self.settings)
                if note:
                    log.warning(note)
                return found, note
            (log.warning if fitted else log.info)(note)
        return create_detector(self.settings, self.taxonomy, kind=kind), note

    def _embedder_for_catalog(self):
        from embedder import create_embedder

        head = self.settings.head or self.catalog.manifest.get("head_path") or ""
        return create_embedder(self.settings.replace(backbone=self.catalog.backbone, head=head))

    # ------------------------------------------------------------------------------------
    def shop_the_look(
        self,
        image: ImageSource,
        *,
        top_k: int | None = None,
        user: str | None = None,
        box: Box | str | None = None,
        category: str | None = None,
        adjective: str | None = None,
        scene_id: str | None = None,
        scene_category: str | None = None,
        name: str | None = None,
    ) -> LookResult:
        top_k = top_k or self.settings.top_k
        timings: dict[str, float] = {}
        t = time.perf_counter()
        picture = load_image(image, max_pixels=self.settings.max_image_pixels, name=name)
        label = name or (str(image) if isinstance(image, (str, Path)) else "<upload>")
        timings["load"] = time.perf_counter() - t
        with self._lock:
            detections, message = self._find_objects(picture, box, category, timings)
            t = time.perf_counter()
            crops = [
                crop(picture, d.box, self.settings.crop_margin if d.source != "scene" else 0.0)
                for d in detections
            ]
            queries = self.embedder.embed_images(crops, batch_size=self.settings.batch_size)
            timings["embed"] = time.perf_counter() - t
        objects = self._search_and_rank(
            detections,
            queries,
            top_k=top_k,
            user=user,
            adjective=adjective,
            scene_id=scene_id,
            scene_category=scene_category,
            timings=timings,
        )
        return LookResult(
            image=label,
            width=picture.width,
            height=picture.height,
            objects=objects,
            message=message,
            timings=timings,
        )

    def _find_objects(self, picture, box, category, timings) -> tuple[list[Detection], str | None]:
        from detector.regions import scene_region, user_region

        t = time.perf_counter()
        if box is not None:
            detection = user_region(
                picture, box, category=category, taxonomy=self.taxonomy, detector=self.detector
            )
            timings["detect"] = time.perf_counter() - t
            return [detection], None
        detections = self.detector.detect(picture)
        apply_threads(self.settings.threads)
        if category:
            detections = [
                d for d in detections if category in (d.search_categories or (d.category,))
            ]
        detections = detections[: self.settings.max_objects]
        timings["detect"] = time.perf_counter() - t
        if not detections:
            return [scene_region(picture)], NOTHING_DETECTED
        return detections, None

    def _search_and_rank(
        self,
        detections: list[Detection],
        queries: np.ndarray,
        *,
        top_k: int,
        user: str | None,
        adjective: str | None,
        scene_id: str | None,
        scene_category: str | None,
        timings: dict[str, float],
    ) -> list[LookObject]:
        from ranker.base import RankContext, VisualOrderRanker

        t_search = t_rank = 0.0
        reranks = not isinstance(self.ranker, VisualOrderRanker) or adjective is not None
        fetch = max(top_k, RERANK_CANDIDATES) if reranks else top_k
        objects = []
        for detection, query in zip(detections, queries):
            t = time.perf_counter()
            categories = self._categories_for(detection)
            found = self.catalog.search_categories(query, categories, fetch)
            hits = [self._hit(pid, score) for pid, score in found]
            t_search += time.perf_counter() - t
            t = time.perf_counter()
            if adjective is not None:
                hits = self._boost_adjective(hits, adjective)
            context = RankContext(
                user_id=user,
                detection=detection,
                query_embedding=query,
                scene_id=scene_id,
                scene_category=scene_category,
                scene_objects=detections,
                scene_embeddings=queries,
                adjective=adjective,
            )
            ranked = self.ranker.rank(context, hits)[:top_k]
            t_rank += time.perf_counter() - t
            objects.append(LookObject(detection=detection, products=ranked))
        timings["search"] = t_search
        timings["rank"] = t_rank
        return objects

    def _categories_for(self, detection: Detection) -> list[str] | None:
        cats = list(detection.search_categories) or (
            [detection.category] if detection.category else []
        )
        # Never an object without products: categories this catalog lacks are not searched,
        # and an object left with none searches the whole catalog.
        cats = [c for c in cats if c in self.catalog.indexes]
        return cats or None  # None: every category (a user box or scene of unknown kind)

    def _hit(self, product_id: str, score: float) -> ProductHit:
        name = self._names.get(product_id)
        return ProductHit(
            product_id=product_id,
            score=score,
            category=self._categories.get(product_id, ""),
            name=None if name is None or (isinstance(name, float) and name != name) else str(name),
            image=self._images.get(product_id),
        )

    def _boost_adjective(self, hits: list[ProductHit], adjective: str) -> list[ProductHit]:
        if self.directions is None:
            from shopthelook.core.errors import ConfigError

            raise ConfigError(
                f"adjective {adjective!r}: no style directions are loaded "
                "(build them with 'shopthelook directions build' and pass --directions)"
            )
        if not hits:
            return hits
        vectors = self.catalog.embeddings([h.product_id for h in hits])
        boosted = self.directions.boost([h.score for h in hits], vectors, adjective)
        for hit, score in zip(hits, boosted):
            hit.score = float(score)
        return sorted(hits, key=lambda h: -h.score)

    def describe(self) -> dict[str, Any]:
        return {
            "catalog": str(self.catalog.path),
            "backbone": self.catalog.backbone,
            "head": self.catalog.head,
            "products": len(self.catalog),
            "ranker": getattr(self.ranker, "name", type(self.ranker).__name__),
            "detector": getattr(self.detector, "name", type(self.detector).__name__),
            "detector_note": self.detector_note,
        }
