"""`shopthelook catalog fit-detector`, and the detector fit that `catalog build` runs.

Background scenes: ``--scenes`` (a folder of photos or a scenes CSV), else the scenes table
of ``--dataset`` (IKEA: its rooms). Only the *training* split of them is used
(``catalog.taught.split``), so that the held-out scenes stay fit for evaluation.
"""

from __future__ import annotations

import argparse

from shopthelook.commands import at_least_one, settings_from_args, show_progress
from shopthelook.core.errors import ShopTheLookError


def add_build_arguments(b) -> None:
    b.add_argument(
        "--fit-detector",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fit the catalog-taught detector after the build (about 1.5 minutes for IKEA). "
        "Default: fit whenever there are scene photos (--scenes, or a dataset with scenes) or "
        "the catalog sells garments; --no-fit-detector skips it",
    )
    _fit_arguments(b)


def _fit_arguments(p) -> None:
    p.add_argument(
        "--scenes",
        dest="fit_scenes_source",
        metavar="FOLDER_OR_CSV",
        help="scene photos to paste products into (folder or CSV; default: the dataset's)",
    )
    p.add_argument(
        "--scene-products",
        metavar="CSV",
        help="which catalog products each scene photo shows (scene_id, product_id; no boxes): "
        "the detector also learns from those real photos (default: the dataset's pairs)",
    )
    p.add_argument(
        "--fit-scenes",
        type=_scene_count,
        metavar="N",
        help="synthetic scenes to make (default 400)",
    )
    p.add_argument(
        "--design", default="hybrid", help="hybrid (default), learned, learned-visual or zero-shot"
    )


def _scene_count(text: str) -> int:
    return at_least_one(text, "synthetic scene, e.g. 400")


def add_fit_parser(csub) -> None:
    f = csub.add_parser(
        "fit-detector", help="teach the detector this catalog's categories (synthetic scenes)"
    )
    f.add_argument("--catalog", required=True)
    f.add_argument("--dataset", help="take background scenes from this dataset (ikea)")
    f.add_argument("--data-root", help="override settings.data_root")
    _fit_arguments(f)
    f.set_defaults(func=cmd_fit_detector)


def background_scenes(args, settings) -> tuple[list[str], dict[str, list[str]]]:
    """Image paths of the training split of the background scenes, and the product ids
    that each of them shows where that is known (``--scene-products``, else the dataset's
    pairs)."""
    from catalog.taught import select_scenes
    from shopthelook.core.datasets import DATASETS, load_pairs, load_scenes

    source = getattr(args, "fit_scenes_source", None)
    dataset = getattr(args, "dataset", None)
    if not source:
        if not dataset or DATASETS.get(dataset) is None or DATASETS[dataset].scenes is None:
            raise ShopTheLookError(
                "the detector needs scene photos to paste products into: give --scenes "
                "(a folder of room or outfit photos, or a scenes CSV)"
            )
        source = dataset
    scenes = load_scenes(source, data_root=settings.data_root)
    images = dict(zip(scenes["scene_id"].astype(str), scenes["image"]))
    train = select_scenes(images, "train") or list(images)  # a handful: use them all
    paths = [images[s] for s in train]
    listed = getattr(args, "scene_products", None)
    if not listed and source == dataset and DATASETS[dataset].pairs:
        listed = dataset
    if not listed:
        return paths, {}
    pairs = load_pairs(listed, data_root=settings.data_root)
    shown: dict[str, list[str]] = {}
    training = set(train)  # held-out scenes' products must never teach the detector
    for scene, product in zip(pairs["scene_id"].astype(str), pairs["product_id"].astype(str)):
        if scene in training:
            shown.setdefault(images[scene], []).append(product)
    if not shown:
        raise ShopTheLookError(
            f"--scene-products {listed}: none of its scene ids is a training scene of "
            f"{source}; give a CSV whose scene_id column names those scenes"
        )
    return paths, shown


def fit_garments_and_save(catalog) -> str:
    """A fashion catalog's garment model (from its own product embeddings), published."""
    from catalog.taught.garment_files import fit_garments, save_garments

    fitted = fit_garments(catalog)
    save_garments(catalog.path, fitted)
    m = fitted.manifest
    return (
        f"garments: {len(m['worn_categories'])} worn categories "
        f"({', '.join(m['worn_categories'])}) learned from {m['training']['photos']} product "
        f"photos of {len(m['catalog_categories'])} categories, {m['fit_seconds']} s; a detected "
        "person becomes the garments it wears"
    )


def _has_scenes(args) -> bool:
    from shopthelook.core.datasets import DATASETS

    dataset = getattr(args, "dataset", None)
    spec = DATASETS.get(dataset) if dataset else None
    return bool(getattr(args, "fit_scenes_source", None)) or (spec is not None and spec.scenes)


def fit_and_save(catalog, args, settings) -> str:
    """Fit the catalog's detector, publish it inside the catalog; a one-line summary."""
    from catalog.taught import FitSettings, fit_detector, save_into_catalog
    from catalog.taught.garment_files import has_garment_categories
    from shopthelook.core.taxonomy import load_taxonomy

    garments = None
    if has_garment_categories(catalog):  # fashion: fitted from the catalog's photos alone
        garments = fit_garments_and_save(catalog)
        if not _has_scenes(args):
            return garments
        catalog = type(catalog).load(catalog.path)
    backgrounds, shown = background_scenes(args, settings)
    fit = FitSettings(scenes=args.fit_scenes or settings.taught_scenes, design=args.design)
    fitted, _, notes = fit_detector(
        catalog,
        backgrounds,
        settings=settings,
        taxonomy=load_taxonomy(settings.taxonomy),
        fit=fit,
        show_progress=show_progress(args),
        scene_products=shown,
    )
    save_into_catalog(catalog.path, fitted)
    m = fitted.manifest
    lines = [
        f"detector: {fitted.classifier.design}, {len(fitted.classifier.categories)} categories "
        f"learned from {sum(m['cutouts'].values())} cut-outs in {fit.scenes} synthetic scenes "
        f"on {m['backgrounds']} training scene(s), {m['fit_seconds']} s"
    ]
    weak = m["weakly_labelled"]
    if weak["scenes"]:
        lines.append(
            f"  and from {weak['positives']} regions of {weak['scenes']} real scene(s) whose "
            "products are listed"
        )
    lines += [f"  note: {n}" for n in notes]
    return "\n".join(([garments] if garments else []) + lines)


def fit_after_build(catalog, args, settings) -> None:
    """What `catalog build` runs after the products are indexed; a failure is reported, not
    fatal (the catalog is built, and it falls back to the COCO label mapping)."""
    from catalog.taught.garment_files import has_garment_categories

    if args.fit_detector is False:
        print("detector: not fitted (--no-fit-detector); objects use the COCO label mapping")
        return
    if args.fit_detector is None and not (_has_scenes(args) or has_garment_categories(catalog)):
        print(
            "detector: not fitted (no scene photos to paste products into); objects use the "
            "COCO label mapping. To teach it this catalog's categories: 'shopthelook catalog "
            f"fit-detector --catalog {args.out} --scenes ROOM_PHOTOS'"
        )
        return
    try:
        print(fit_and_save(catalog, args, settings))
    except ShopTheLookError as exc:
        print(f"detector: not fitted ({exc}); objects use the COCO label mapping")


def cmd_fit_detector(args) -> int:
    from catalog import Catalog

    settings = settings_from_args(args, data_root=args.data_root)
    catalog = Catalog.load(args.catalog)
    print(fit_and_save(catalog, args, settings))
    return 0


def refit_notice(catalog) -> str | None:
    """A line telling the user to refit when the catalog's categories changed since the fit."""
    from catalog.taught.files import (
        detector_folder,
        has_detector,
        learnable_categories,
        read_detector,
    )

    if not has_detector(catalog.path):
        return None
    fitted = read_detector(detector_folder(catalog.path))
    new = sorted(set(learnable_categories(catalog)) - set(fitted.manifest["catalog_categories"]))
    gone = sorted(set(fitted.manifest["catalog_categories"]) - set(learnable_categories(catalog)))
    if not new and not gone:
        return None
    return (
        f"the catalog's categories changed (new: {', '.join(new) or '-'}; gone: "
        f"{', '.join(gone) or '-'}): its detector is not used until you refit it with "
        f"'shopthelook catalog fit-detector --catalog {catalog.path}'"
    )
