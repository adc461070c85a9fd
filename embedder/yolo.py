"""The ``yolo`` backbone: pooled multi-stage features of the detector's own YOLO network.

The detector and this backbone share one ultralytics model in memory (``load_yolo`` caches
it), so a deployment holds a single set of weights. A crop is letterboxed to a 256-pixel
square (grey 114 padding, RGB/255, as ultralytics feeds its network) and run through the
network up to the deepest hooked layer (the neck and the Detect head are never run). Each
hooked map is GeM-pooled (p=3) over the *image* part of the letterbox only, L2-normalised
(so the 64-channel stage weighs as much as the 256-channel one), and the blocks are
concatenated and normalised.

Defaults (layers 4, 6, 8 = the C2f stages at strides 8, 16, 32; GeM; 256 px; letterbox) were
chosen by look-recall@10 on the IKEA crop -> product pairs (benchmarks/eval_backbone_ikea.py,
279 detectable pairs, so about +-.03): GeM .41 / max .39 / avg .35 averaged over all layer
sets and sizes; mid-level stages beat the SPPF and neck outputs (which serve detection, not
identity); 224-256 px beat 320. Chosen setting .563; random .204; hvf .31.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from embedder.batching import BatchedBackbone
from shopthelook.core.config import apply_threads
from shopthelook.core.errors import BackboneError, ConfigError
from shopthelook.core.fingerprint import file_fingerprint

log = logging.getLogger(__name__)

POOLINGS = ("avg", "max", "gem", "avgmax")
RESIZES = ("letterbox", "stretch")
PAD_VALUE = 114  # ultralytics' letterbox grey


@dataclass(frozen=True)
class YoloFeatureConfig:
    #: indices into DetectionModel.model (yolov8: 0-9 backbone with SPPF at 9, 10-21 neck)
    layers: tuple[int, ...] = (4, 6, 8)
    #: avg | max | gem (generalised mean, p=3) | avgmax (avg and max blocks side by side)
    pooling: str = "gem"
    #: square network input in pixels (a multiple of 32)
    image_size: int = 256
    #: letterbox (keep aspect, pad grey, pool the image part only) | stretch (to the square)
    resize: str = "letterbox"
    gem_p: float = 3.0

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise BackboneError(f"yolo pooling {self.pooling!r}: use one of {POOLINGS}")
        if self.resize not in RESIZES:
            raise BackboneError(f"yolo resize {self.resize!r}: use one of {RESIZES}")
        if self.image_size % 32 or self.image_size < 64:
            raise BackboneError(f"yolo image_size {self.image_size}: use a multiple of 32, >= 64")
        if not self.layers:
            raise BackboneError("yolo layers: give at least one layer index")


def letterbox(image: Image.Image, size: int, resize: str = "letterbox"):
    """(uint8 array [size, size, 3], valid (x1, y1, x2, y2) in pixels) for an RGB image."""
    width, height = image.size
    if resize == "stretch":
        return np.asarray(image.resize((size, size), Image.BILINEAR)), (0, 0, size, size)
    scale = size / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    canvas = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    x1, y1 = (size - new_w) // 2, (size - new_h) // 2
    canvas[y1 : y1 + new_h, x1 : x1 + new_w] = np.asarray(
        image.resize((new_w, new_h), Image.BILINEAR)
    )
    return canvas, (x1, y1, x1 + new_w, y1 + new_h)


class YoloBackbone(BatchedBackbone):
    def __init__(
        self,
        weights: str,
        config: YoloFeatureConfig | None = None,
        *,
        name: str = "yolo",
        threads: int | None = None,
    ) -> None:
        from shopthelook.core.yolo_model import load_yolo, model_lock

        self.name = name
        self.weights = str(weights)
        self.config = config or YoloFeatureConfig()
        self.threads = threads
        try:
            yolo = load_yolo(self.weights)
        except ConfigError as exc:
            raise BackboneError(f"yolo backbone: {exc}") from None
        detection_model = yolo.model
        if not hasattr(detection_model, "model") or not isinstance(
            detection_model.model, torch.nn.Sequential
        ):
            raise BackboneError(
                f"yolo backbone: {self.weights} is not an ultralytics DetectionModel checkpoint"
            )
        self.model = detection_model
        self.layers = list(detection_model.model)
        deepest = max(self.config.layers)
        if min(self.config.layers) < 0 or deepest >= len(self.layers) - 1:
            raise BackboneError(
                f"yolo layers {self.config.layers}: {self.weights} has layers 0..{len(self.layers) - 2}"
                " before its Detect head"
            )
        with model_lock(yolo):  # never while the detector's predictor is using the model
            self._prepare_model()
        with torch.inference_mode():
            probe = self.feature_maps(torch.zeros(1, 3, 64, 64))
        self.channels = {i: int(probe[i].shape[1]) for i in self.config.layers}
        per_pool = 2 if self.config.pooling == "avgmax" else 1
        self.dim = per_pool * sum(self.channels.values())

    def weights_fingerprints(self) -> dict[str, str]:
        fingerprint = file_fingerprint(self.weights)
        return {self.name: fingerprint} if fingerprint else {}

    def _prepare_model(self) -> None:
        # The detector's predictor fuses the shared model itself; fusing Conv+BN here too is
        # idempotent and makes embedding fast even when no detection ran first.
        self.model.eval()
        if hasattr(self.model, "is_fused") and not self.model.is_fused():
            self.model.fuse(verbose=False)

    # -- the three steps, public so that evaluation and region pooling can reuse them --
    def preprocess(self, images: Sequence[Image.Image]) -> tuple[torch.Tensor, torch.Tensor]:
        """(input batch [n, 3, S, S] float in 0..1, valid-pixel mask [n, 1, S, S])."""
        size = self.config.image_size
        arrays, mask = [], torch.zeros(len(images), 1, size, size)
        for k, image in enumerate(images):
            array, (x1, y1, x2, y2) = letterbox(image, size, self.config.resize)
            arrays.append(array)
            mask[k, 0, y1:y2, x1:x2] = 1.0
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
        return batch.contiguous(), mask

    def feature_maps(self, batch: torch.Tensor) -> dict[int, torch.Tensor]:
        """The hooked layers' maps for a preprocessed batch (call inside inference_mode)."""
        wanted, deepest = set(self.config.layers), max(self.config.layers)
        outputs: list[torch.Tensor | None] = []
        maps: dict[int, torch.Tensor] = {}
        x = batch
        for index, layer in enumerate(self.layers[: deepest + 1]):
            if layer.f != -1:  # this layer reads earlier outputs (Concat in the neck)
                x = (
                    outputs[layer.f]
                    if isinstance(layer.f, int)
                    else [x if j == -1 else outputs[j] for j in layer.f]
                )
            x = layer(x)
            outputs.append(x)
            if index in wanted:
                maps[index] = x
        return maps

    def pool(self, maps: dict[int, torch.Tensor], mask: torch.Tensor | None = None) -> np.ndarray:
        """[n, dim] float32: each layer pooled (over ``mask`` where given), block-normalised."""
        blocks = []
        for index in self.config.layers:
            fmap = maps[index]
            weight = None
            if mask is not None and self.config.resize == "letterbox":
                weight = F.adaptive_avg_pool2d(mask, fmap.shape[-2:])
            for kind in (
                ("avg", "max") if self.config.pooling == "avgmax" else (self.config.pooling,)
            ):
                blocks.append(F.normalize(pool_map(fmap, kind, weight, self.config.gem_p), dim=1))
        return torch.cat(blocks, dim=1).numpy().astype(np.float32)

    def _embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        if self.threads:
            apply_threads(self.threads)  # ultralytics' predictor resets torch to 1 thread
        batch, mask = self.preprocess(images)
        with torch.inference_mode():
            return self.pool(self.feature_maps(batch), mask)


def pool_map(
    fmap: torch.Tensor, kind: str, weight: torch.Tensor | None = None, p: float = 3.0
) -> torch.Tensor:
    """Pool [n, c, h, w] to [n, c]; ``weight`` [n, 1, h, w] is the image fraction of each cell."""
    if weight is None:
        weight = torch.ones_like(fmap[:, :1])
    total = weight.sum(dim=(2, 3)).clamp_min(1e-6)
    if kind == "avg":
        return (fmap * weight).sum(dim=(2, 3)) / total
    if kind == "max":
        # cells that are mostly padding must not win the max (unless every cell is mostly pad)
        keep = weight >= weight.amax(dim=(2, 3), keepdim=True).clamp_max(0.5)
        return fmap.masked_fill(~keep, float("-inf")).amax(dim=(2, 3))
    if kind == "gem":
        powered = fmap.clamp_min(1e-6).pow(p)
        return ((powered * weight).sum(dim=(2, 3)) / total).pow(1.0 / p)
    raise BackboneError(f"yolo pooling {kind!r}: use one of {POOLINGS}")
