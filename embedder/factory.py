"""Building what the registries name: backbones (single or concatenated), heads, embedders.

This module sits above the registries and the built-in implementations, so that importing a
registry never imports the implementations that register themselves in it.
"""

from __future__ import annotations

import json
from pathlib import Path

import embedder.builtin_backbones  # noqa: F401  (registers yolo, hvf, random, clip)
import embedder.same  # noqa: F401  (registers the SAME head's loader)
from embedder.base import Backbone
from embedder.concat import ConcatBackbone
from embedder.head import HEAD_LOADERS, Embedder, Head
from embedder.registry import backbone_entry, parse_backbone_name
from shopthelook.core.config import Settings
from shopthelook.core.errors import BackboneError, HeadError


def create_backbone(name: str, settings: Settings | None = None) -> Backbone:
    """The backbone called ``name``; BackboneError names the known ones for an unknown name."""
    settings = settings or Settings()
    blocks = parse_backbone_name(name)
    built = [(backbone_entry(p).factory(arg, settings), w) for p, arg, w in blocks]
    if len(built) == 1 and built[0][1] == 1.0:
        return built[0][0]
    return ConcatBackbone(built)


def create_embedder(settings: Settings | None = None) -> Embedder:
    """settings.backbone followed by the head in settings.head (identity when empty)."""
    settings = settings or Settings()
    backbone = create_backbone(settings.backbone, settings)
    head = load_head(settings.head) if settings.head else None
    return Embedder(backbone, head)


def load_head(path: str | Path) -> Head:
    folder = Path(path)
    manifest = folder / "head.json"
    if not manifest.exists():
        raise HeadError(
            f"head folder {folder}: no head.json (train one with 'shopthelook same train')"
        )
    try:
        config = json.loads(manifest.read_text())
        kind = config["kind"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise HeadError(f"head folder {folder}: head.json is corrupt ({exc})") from None
    if kind not in HEAD_LOADERS:
        raise HeadError(f"head folder {folder}: unknown head kind {kind!r}")
    return HEAD_LOADERS[kind].load(folder)


def create_classifier(name: str = "effnet-lite2", settings: Settings | None = None):
    """A backbone that also classifies (``.classify(images, top_k=5)`` -> [(ImageNet label,
    probability)] per image); BackboneError for a backbone without a classifier head."""
    backbone = create_backbone(name, settings)
    if not callable(getattr(backbone, "classify", None)):
        raise BackboneError(
            f"backbone {name!r} has no classifier head; use effnet-lite0 or effnet-lite2"
        )
    return backbone
