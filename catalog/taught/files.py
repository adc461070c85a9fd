"""A fitted detector inside its catalog folder: ``<catalog>/detector/{manifest.json,
classifier.npz}``, published atomically as a new version of the whole catalog (a killed fit
leaves the previous catalog, and its previous detector, as they were).

The manifest says what was learned from what: the design, the categories, the region
features' backbone and weights, the catalog's backbone and categories, the training
settings and a fingerprint of the classifier. A detector whose catalog has since changed
backbone or categories is refused with a message that says to refit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from catalog.swap import publish, resolve_version, temp_folder
from catalog.taught.model import RegionClassifier
from catalog.taught.regions import RegionConfig
from shopthelook.core.errors import CatalogError
from shopthelook.core.fingerprint import file_fingerprint

log = logging.getLogger(__name__)

FOLDER = "detector"
MANIFEST = "manifest.json"
ARRAYS = "classifier.npz"
FORMAT = 1
REFIT = "refit it with 'shopthelook catalog fit-detector --catalog {path}'"


@dataclass
class FittedDetector:
    classifier: RegionClassifier
    region: RegionConfig
    manifest: dict[str, Any]


def learnable_categories(catalog) -> list[str]:
    """The catalog's categories a detector can be taught (every one except "other")."""
    from shopthelook.core.taxonomy import OTHER

    return [c for c in catalog.categories() if c != OTHER]


def detector_folder(catalog_path: str | Path) -> Path:
    return resolve_version(Path(catalog_path)) / FOLDER


def has_detector(catalog_path: str | Path | None) -> bool:
    return catalog_path is not None and (detector_folder(catalog_path) / MANIFEST).is_file()


def fingerprint(classifier: RegionClassifier) -> str:
    h = hashlib.sha256()
    for key, array in sorted(classifier.to_arrays().items()):
        h.update(key.encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


def write_detector(folder: Path, fitted: FittedDetector) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / ARRAYS, **fitted.classifier.to_arrays())
    manifest = dict(
        fitted.manifest,
        format=FORMAT,
        design=fitted.classifier.design,
        categories=list(fitted.classifier.categories),
        region=fitted.region.as_dict(),
        fingerprint=fingerprint(fitted.classifier),
    )
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def save_into_catalog(catalog_path: str | Path, fitted: FittedDetector) -> Path:
    """Publish a new version of the catalog at ``catalog_path`` holding ``fitted``."""
    out = Path(catalog_path)
    current = resolve_version(out)
    if not (current / "manifest.json").is_file():
        raise CatalogError(f"catalog {out}: not a catalog folder; build it first")
    tmp = temp_folder(out)
    try:
        shutil.copytree(current, tmp, ignore=shutil.ignore_patterns(FOLDER))
        write_detector(tmp / FOLDER, fitted)
        publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return detector_folder(out)


#: what a catalog version learned from its own products, carried into the next version
#: (the detector, and a fashion catalog's garment model, ``garment_files.FOLDER``)
CARRIED_FOLDERS = (FOLDER, "garments")


def carry_over(previous_version: Path, catalog_path: str | Path) -> bool:
    """Copy the fitted detector and garment model of an earlier version into the catalog's
    current one (after an add or remove rewrote the catalog); False when there was none.
    Their load checks say when the catalog has changed too much and they need a refit."""
    out = Path(catalog_path)
    current = resolve_version(out)
    folders = [
        name
        for name in CARRIED_FOLDERS
        if (previous_version / name / MANIFEST).is_file()
        and not (current / name / MANIFEST).is_file()
    ]
    if not folders:
        return False
    tmp = temp_folder(out)
    try:
        shutil.copytree(current, tmp, ignore=shutil.ignore_patterns(*folders))
        for name in folders:
            shutil.copytree(previous_version / name, tmp / name)
        publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return True


def read_detector(folder: str | Path) -> FittedDetector:
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        arrays = dict(np.load(folder / ARRAYS))
    except (OSError, ValueError) as exc:
        raise CatalogError(
            f"fitted detector {folder}: unreadable ({exc}); " + REFIT.format(path=folder.parent)
        ) from None
    if manifest.get("format") != FORMAT:
        raise CatalogError(
            f"fitted detector {folder}: format {manifest.get('format')}; "
            + REFIT.format(path=folder.parent)
        )
    classifier = RegionClassifier.from_arrays(manifest["design"], manifest["categories"], arrays)
    if fingerprint(classifier) != manifest.get("fingerprint"):
        raise CatalogError(
            f"fitted detector {folder}: its arrays do not match the manifest's fingerprint; "
            + REFIT.format(path=folder.parent)
        )
    return FittedDetector(classifier, RegionConfig(**manifest["region"]), manifest)


def check_against_catalog(fitted: FittedDetector, catalog, weights: str) -> None:
    """CatalogError (saying to refit) when the catalog or the weights changed since the fit."""
    m, path = fitted.manifest, catalog.path
    if m.get("catalog_backbone") != catalog.backbone:
        raise CatalogError(
            f"the detector of catalog {path} was fitted for a catalog of backbone "
            f"{m.get('catalog_backbone')!r}, the catalog is {catalog.backbone!r}; "
            + REFIT.format(path=path)
        )
    now = learnable_categories(catalog)
    if sorted(m.get("catalog_categories", [])) != sorted(now):
        new = sorted(set(now) - set(m.get("catalog_categories", [])))
        gone = sorted(set(m.get("catalog_categories", [])) - set(now))
        raise CatalogError(
            f"the detector of catalog {path} was fitted for other categories (new: "
            f"{', '.join(new) or '-'}; gone: {', '.join(gone) or '-'}); " + REFIT.format(path=path)
        )
    recorded = m.get("yolo_weights")
    current = file_fingerprint(weights)
    if recorded and current and recorded != current:
        raise CatalogError(
            f"the detector of catalog {path} was fitted with other YOLO weights than {weights}; "
            + REFIT.format(path=path)
        )
