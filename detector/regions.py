"""Regions that do not come from the detector: a box the user drew, or the whole scene."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from PIL import Image

from detector.base import Detector, box_iou, covered_share
from shopthelook.core.errors import BoxError
from shopthelook.core.images import crop
from shopthelook.core.types import Box, Detection

if TYPE_CHECKING:
    from shopthelook.core.taxonomy import Taxonomy

log = logging.getLogger(__name__)

#: a detection names the user's box when they overlap this much ...
MATCH_IOU = 0.3
#: ... or when the user's box holds at least this share of the detection
MATCH_COVERED = 0.6
#: context around the user's box when the detector is run on its crop
CROP_MARGIN = 0.1

USER_LABEL = "object"
SCENE_LABEL = "scene"


def user_region(
    image: Image.Image,
    box: Box | str,
    *,
    category: str | None = None,
    taxonomy: Taxonomy,
    detector: Detector | None = None,
    detections: Sequence[Detection] | None = None,
) -> Detection:
    """The object inside a box the user drew, with its catalog category.

    ``box`` is a Box or ``"x1,y1,x2,y2"`` in pixels of the upright image; it is clipped to the
    image, and a box outside it raises BoxError. The category is the user's (it must be one
    the taxonomy knows), else the detector's own classifier's (``Detector.name_region``, the
    catalog-taught detector's), else that of the detection overlapping the box best (from
    ``detections`` when the caller already ran the detector, else from ``detector``), else
    what the detector finds in the crop; None when nothing is found, and then every category
    is searched.
    """
    width, height = image.size
    if isinstance(box, str):
        box = Box.parse(box)
    box = box.validated(width, height)

    if category is not None and category.strip():
        return _given_category(box, category.strip(), taxonomy)

    if detector is not None:
        named = detector.name_region(image, box)
        if named is not None:
            return named
    match = None
    if detections is None and detector is not None:
        detections = detector.detect(image)
    if detections:
        match = best_overlap(box, detections)
    if match is None and detector is not None:
        match = _detect_in_crop(image, box, detector)
    if match is None:
        log.debug("user box %s: no object recognised, searching every category", box.as_list())
        return Detection(box, USER_LABEL, 1.0, None, (), source="user")
    return Detection(
        box,
        match.label,
        1.0,
        match.category,
        match.search_categories or ((match.category,) if match.category else ()),
        source="user",
    )


def best_overlap(box: Box, detections: Sequence[Detection]) -> Detection | None:
    """The categorised detection that best matches ``box``: highest IoU among those that
    overlap it by IoU >= MATCH_IOU or lie mostly (MATCH_COVERED) inside it."""
    candidates = [
        d
        for d in detections
        if d.category is not None
        and (box_iou(box, d.box) >= MATCH_IOU or covered_share(d.box, box) >= MATCH_COVERED)
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda d: (box_iou(box, d.box), d.score))


def scene_region(image: Image.Image) -> Detection:
    """The whole image as one object, offered when the detector finds nothing."""
    width, height = image.size
    return Detection(
        Box(0.0, 0.0, float(width), float(height)), SCENE_LABEL, 1.0, None, (), source="scene"
    )


def _given_category(box: Box, category: str, taxonomy: Taxonomy) -> Detection:
    known = taxonomy.categories
    if category not in known and category.lower() in known:
        category = category.lower()
    if category not in known:
        raise BoxError(
            f"category {category!r} is not a catalog category; known: {', '.join(known)}"
        )
    return Detection(box, category, 1.0, category, (category,), source="user")


def _detect_in_crop(image: Image.Image, box: Box, detector: Detector) -> Detection | None:
    """The best categorised detection in the crop, preferring one that fills the box."""
    region = crop(image, box, CROP_MARGIN)
    found = [d for d in detector.detect(region) if d.category is not None]
    if not found:
        return None
    # The crop is the user's box grown by the margin: prefer objects that fill it.
    crop_box = Box(0.0, 0.0, float(region.width), float(region.height))
    return max(found, key=lambda d: d.score * (0.5 + 0.5 * box_iou(crop_box, d.box)))
