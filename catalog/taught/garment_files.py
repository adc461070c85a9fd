"""Fit, save and load a catalog's garment model: ``<catalog>/garments/{manifest.json,
classifier.npz}``, published atomically as a new catalog version (catalog/swap.py: a
killed fit leaves the previous catalog serving).

The classifier learns from the catalog's own stored product embeddings (no image pass), so
it lives in the catalog's embedding space; the manifest records the categories, backbone,
head, weights, the body-band priors, the training settings and a fingerprint. A model whose
catalog has since changed is refused with a message that says to refit.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from catalog.swap import publish, resolve_version, temp_folder
from catalog.taught.garments import (
    GarmentClassifier,
    GarmentDetector,
    GarmentPriors,
    GarmentSettings,
    fit_garment_classifier,
    load_priors,
)
from catalog.taught.split import scene_split
from shopthelook.core.errors import CatalogError

FOLDER = "garments"
MANIFEST = "manifest.json"
ARRAYS = "classifier.npz"
FORMAT = 1
REFIT = "refit it with 'shopthelook catalog fit-detector --catalog {path}'"
#: product columns that group photos of one product (colour variants share a product_code)
GROUP_COLUMNS = ("product_code", "product_id")


@dataclass(frozen=True)
class GarmentFit:
    #: "all" (serving) or "train" (evaluation: the held-out groups are never seen)
    split: str = "all"
    regularisation: float = 0.5
    max_iter: int = 500


@dataclass
class FittedGarments:
    classifier: GarmentClassifier
    priors: GarmentPriors
    manifest: dict[str, Any]


def group_column(products) -> str:
    return next(c for c in GROUP_COLUMNS if c in products.columns)


def product_split(products) -> np.ndarray:
    """ "train" or "heldout" per product, by a stable hash of its group (product_code)."""
    key = group_column(products)
    return np.array([scene_split(str(k)) for k in products[key]])


def catalog_categories(catalog) -> list[str]:
    from catalog.taught.files import learnable_categories

    return learnable_categories(catalog)


def has_garment_categories(catalog, priors: GarmentPriors | None = None) -> bool:
    return bool((priors or load_priors()).worn(catalog_categories(catalog)))


def garment_folder(catalog_path: str | Path) -> Path:
    return resolve_version(Path(catalog_path)) / FOLDER


def has_garments(catalog_path: str | Path | None) -> bool:
    return catalog_path is not None and (garment_folder(catalog_path) / MANIFEST).is_file()


def fingerprint(classifier: GarmentClassifier) -> str:
    h = hashlib.sha256(json.dumps(list(classifier.categories)).encode())
    for key, array in sorted(classifier.to_arrays().items()):
        h.update(key.encode())
        h.update(np.ascontiguousarray(array, np.float32).tobytes())
    return h.hexdigest()[:16]


def fit_garments(
    catalog, *, priors: GarmentPriors | None = None, fit: GarmentFit | None = None
) -> FittedGarments:
    """Learn the catalog's categories from its own product embeddings."""
    started = time.perf_counter()
    priors, fit = priors or load_priors(), fit or GarmentFit()
    categories = catalog_categories(catalog)
    worn = priors.worn(categories)
    if not worn:
        raise CatalogError(
            f"catalog {catalog.path}: none of its categories is worn on a person "
            f"(data/garments.toml): nothing to fit"
        )
    products = catalog.products
    keep = products["category"].isin(categories).to_numpy().copy()
    if fit.split != "all":
        keep &= product_split(products) == fit.split
    rows = np.nonzero(keep)[0]
    x = catalog.vectors[rows]
    labels = products["category"].to_numpy()[rows]
    classifier = fit_garment_classifier(
        x, labels, categories, regularisation=fit.regularisation, max_iter=fit.max_iter
    )
    counts = {c: int((labels == c).sum()) for c in categories}
    manifest = {
        "catalog_backbone": catalog.backbone,
        "catalog_head": catalog.head,
        "catalog_categories": categories,
        "worn_categories": worn,
        "weights_fingerprints": catalog.manifest.get("weights_fingerprints", {}),
        "catalog_source_hash": catalog.manifest.get("source_hash"),
        "training": asdict(fit) | {"photos": int(len(rows)), "per_category": counts},
        "fit_seconds": round(time.perf_counter() - started, 2),
    }
    return FittedGarments(classifier, priors, manifest)


def write_garments(folder: Path, fitted: FittedGarments) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / ARRAYS, **fitted.classifier.to_arrays())
    manifest = dict(
        fitted.manifest,
        format=FORMAT,
        categories=list(fitted.classifier.categories),
        priors=fitted.priors.as_dict(),
        fingerprint=fingerprint(fitted.classifier),
    )
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def save_garments(catalog_path: str | Path, fitted: FittedGarments) -> Path:
    """Publish a new version of the catalog at ``catalog_path`` holding ``fitted``."""
    out = Path(catalog_path)
    current = resolve_version(out)
    if not (current / "manifest.json").is_file():
        raise CatalogError(f"catalog {out}: not a catalog folder; build it first")
    tmp = temp_folder(out)
    try:
        shutil.copytree(current, tmp, ignore=shutil.ignore_patterns(FOLDER))
        write_garments(tmp / FOLDER, fitted)
        publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return garment_folder(out)


def read_garments(folder: str | Path) -> FittedGarments:
    folder = Path(folder)
    refit = REFIT.format(path=folder.parent)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        arrays = dict(np.load(folder / ARRAYS))
    except (OSError, ValueError) as exc:
        raise CatalogError(f"garment model {folder}: unreadable ({exc}); {refit}") from None
    if manifest.get("format") != FORMAT:
        raise CatalogError(f"garment model {folder}: format {manifest.get('format')}; {refit}")
    try:
        classifier = GarmentClassifier.from_arrays(manifest["categories"], arrays)
        priors = GarmentPriors.from_dict(manifest["priors"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CatalogError(f"garment model {folder}: incomplete ({exc}); {refit}") from None
    if fingerprint(classifier) != manifest.get("fingerprint"):
        raise CatalogError(
            f"garment model {folder}: its arrays do not match the manifest's fingerprint; {refit}"
        )
    return FittedGarments(classifier, priors, manifest)


def check_garments(fitted: FittedGarments, catalog) -> None:
    """CatalogError (saying to refit) when the catalog changed since the fit."""
    m, path = fitted.manifest, catalog.path
    refit = REFIT.format(path=path)
    if (m.get("catalog_backbone"), m.get("catalog_head")) != (catalog.backbone, catalog.head):
        raise CatalogError(
            f"the garment model of catalog {path} was fitted for backbone "
            f"{m.get('catalog_backbone')!r} / head {m.get('catalog_head')!r}, the catalog is "
            f"{catalog.backbone!r} / {catalog.head!r}; {refit}"
        )
    now = catalog_categories(catalog)
    if sorted(m.get("catalog_categories", [])) != sorted(now):
        new = sorted(set(now) - set(m.get("catalog_categories", [])))
        gone = sorted(set(m.get("catalog_categories", [])) - set(now))
        raise CatalogError(
            f"the garment model of catalog {path} was fitted for other categories (new: "
            f"{', '.join(new) or '-'}; gone: {', '.join(gone) or '-'}); {refit}"
        )
    if m.get("weights_fingerprints", {}) != catalog.manifest.get("weights_fingerprints", {}):
        raise CatalogError(
            f"the garment model of catalog {path} was fitted on embeddings of other weights; {refit}"
        )


def catalog_embed(catalog, settings):
    """``images -> embeddings`` with the catalog's own backbone and head (loaded on the
    first call, so a pipeline that never sees a person never loads a second embedder)."""
    loaded = []

    def embed(images):
        if not loaded:
            from embedder import create_embedder

            head = settings.head or catalog.manifest.get("head_path") or ""
            loaded.append(create_embedder(settings.replace(backbone=catalog.backbone, head=head)))
        return loaded[0].embed_images(images, batch_size=settings.batch_size)

    return embed


def garment_detector(base, catalog, settings, *, embed=None) -> GarmentDetector:
    """``base`` with its persons replaced by garments (CatalogError when stale)."""
    fitted = read_garments(garment_folder(catalog.path))
    check_garments(fitted, catalog)
    return GarmentDetector(
        base,
        fitted.classifier,
        fitted.priors,
        embed or catalog_embed(catalog, settings),
        max_objects=settings.max_objects,
        settings=GarmentSettings(),
    )


def with_garments(base, catalog, settings, *, strict: bool = False):
    """``(detector, note)``: ``base`` wrapped by the catalog's garment model when it has
    one; a stale model is refused (CatalogError when ``strict``, else a note and ``base``)."""
    if not has_garments(catalog.path):
        return base, None
    try:
        return garment_detector(base, catalog, settings), None
    except CatalogError as exc:
        if strict:
            raise
        return base, f"{exc}; meanwhile a person searches every garment category"
