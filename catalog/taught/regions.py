"""Candidate regions of a scene and the features the region classifier reads.

Proposals: the YOLO model's boxes of every COCO class at a low confidence with class-agnostic
NMS, plus fixed multi-scale windows (grids, floor bands, side strips, tall windows). Features
per region, in this order (``FeatureLayout``):

- ``visual``: 1280 EfficientNet-Lite head features, either RoI-average-pooled from one
  forward pass over the whole scene (``mode="roi"``) or the head average of the region's own
  crop (``mode="crop"``, one forward pass per region: slower);
- ``imagenet``: the ImageNet head's probabilities on those features, summed per catalog
  category through the taxonomy's ``imagenet_labels`` (plus one "unmapped" column);
- ``yolo``: the proposal's YOLO confidence in the column of its COCO label's category;
- ``geometry``: centre, size, log aspect ratio, and whether the region is a fixed window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from shopthelook.core.config import apply_threads
from shopthelook.core.images import crop
from shopthelook.core.types import Box
from shopthelook.core.yolo_model import load_yolo, model_lock

log = logging.getLogger(__name__)

GEOMETRY = 6
MODES = ("roi", "crop")


@dataclass(frozen=True)
class RegionConfig:
    #: EfficientNet-Lite variant whose features and ImageNet head describe regions
    backbone: str = "effnet-lite0"
    #: "roi" (one scene forward pass) or "crop" (one pass per region)
    mode: str = "roi"
    #: long side of the scene for the EfficientNet pass (roi) or crop side (crop)
    image_size: int = 448
    crop_size: int = 160
    yolo_confidence: float = 0.02
    yolo_iou: float = 0.6
    yolo_boxes: int = 60
    yolo_image_size: int = 640
    windows: bool = True
    #: sides (shares of the scene) of the square window grids, each stepped by half a side
    window_grids: tuple[float, ...] = (1 / 2, 1 / 3)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class FeatureLayout:
    categories: tuple[str, ...]

    @property
    def visual(self) -> slice:
        return slice(0, 1280)

    @property
    def imagenet(self) -> slice:
        return slice(1280, 1280 + len(self.categories) + 1)

    @property
    def yolo(self) -> slice:
        start = self.imagenet.stop
        return slice(start, start + len(self.categories))

    @property
    def width(self) -> int:
        return self.yolo.stop + GEOMETRY


def windows(
    width: int, height: int, grids: Sequence[float] = (1 / 2, 1 / 3)
) -> list[tuple[float, float, float, float, bool]]:
    """Fixed windows in pixels: the whole image, square grids of ``grids`` sides, floor
    bands, side strips and tall windows (lamps, shelving, curtains, rugs)."""
    out = [(0.0, 0.0, 1.0, 1.0)]
    for side in grids:
        steps = np.arange(0.0, 1.0 - side + 1e-6, side / 2)
        out += [(x, y, x + side, y + side) for y in steps for x in steps]
    out += [(0.0, 2 / 3, 1.0, 1.0), (0.0, 0.5, 1.0, 1.0), (1 / 6, 0.55, 5 / 6, 1.0)]
    out += [(0.2, 0.7, 0.8, 1.0)]
    out += [(0.0, 0.0, 0.25, 1.0), (0.75, 0.0, 1.0, 1.0), (0.0, 0.0, 0.2, 0.8)]
    out += [(0.8, 0.0, 1.0, 0.8)]
    for x in np.arange(0.0, 2 / 3 + 1e-6, 1 / 6):
        out += [(x, 0.0, x + 1 / 3, 2 / 3), (x, 1 / 3, x + 1 / 3, 1.0)]
    return [(a * width, b * height, c * width, d * height, True) for a, b, c, d in out]


class RegionFeaturizer:
    """Proposals and region features for one taxonomy's categories."""

    def __init__(
        self,
        categories: Sequence[str],
        taxonomy,
        *,
        weights: str | None,
        config: RegionConfig | None = None,
        threads: int = 2,
        runtime: str = "auto",
    ) -> None:
        """``runtime``: where the scene's feature map is computed (``embed_runtime``:
        "auto" takes OpenVINO when installed; the regions' features are the same)."""
        from embedder.effnet import EffNetBackbone, EffNetConfig
        from embedder.effnet_runtime import feature_map_runtime
        from embedder.imagenet import imagenet_labels
        from shopthelook.core.fingerprint import file_fingerprint

        self.config = config or RegionConfig()
        if self.config.mode not in MODES:
            raise ValueError(f"region mode {self.config.mode!r}: choose one of {MODES}")
        self.layout = FeatureLayout(tuple(categories))
        self.taxonomy, self.threads = taxonomy, threads
        # without YOLO weights the proposals are the fixed windows alone
        self.yolo = load_yolo(weights) if weights else None
        names = dict(self.yolo.names) if self.yolo is not None else {}
        self.yolo_labels = {int(k): str(v) for k, v in names.items()}
        column = {c: i for i, c in enumerate(self.layout.categories)}
        self._yolo_column = {
            k: column.get(taxonomy.category_for_label(v) or "", -1)
            for k, v in self.yolo_labels.items()
        }
        mapping = taxonomy.imagenet_map()
        unmapped = len(self.layout.categories)
        self._imagenet_column = torch.tensor(
            [column.get(mapping.get(name, ""), unmapped) for name in imagenet_labels()]
        )
        crop_config = EffNetConfig(image_size=self.config.crop_size)
        self.effnet = EffNetBackbone(
            self.config.backbone, config=crop_config, threads=threads, runtime="torch"
        )
        self.network = self.effnet.model
        key = f"{self.config.backbone}-{file_fingerprint(self.effnet.weights)}-{torch.__version__}"
        self.feature_map = feature_map_runtime(runtime, self.network, key, threads)
        self.timings: dict[str, float] = {}

    # -- proposals ------------------------------------------------------------------------
    def propose(
        self, image: Image.Image, yolo_raw: tuple[np.ndarray, ...] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes [n, 4] (pixels), YOLO confidences [n] and category columns [n] (-1: none,
        or a fixed window). ``yolo_raw``: (xyxy, conf, cls) of a YOLO pass already made over
        this image at ``yolo_confidence`` or lower (the complement detector's COCO pass), so
        the model does not run twice; its boxes get the class-agnostic NMS here."""
        t = time.perf_counter()
        width, height = image.size
        if yolo_raw is not None and self.yolo is not None:
            xyxy, conf, columns = self.boxes_from_raw(*yolo_raw)
        elif self.yolo is None:
            xyxy, conf, columns = np.zeros((0, 4), np.float32), np.zeros(0), np.zeros(0, int)
        else:
            xyxy, conf, columns = self._yolo_boxes(image)
        if self.config.windows or not len(xyxy):
            grids = self.config.window_grids
            fixed = np.array([w[:4] for w in windows(width, height, grids)], np.float32)
            xyxy = np.concatenate([xyxy, fixed])
            conf = np.concatenate([conf, np.zeros(len(fixed))])
            columns = np.concatenate([columns, np.full(len(fixed), -2)])
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
        keep = (xyxy[:, 2] - xyxy[:, 0] >= 4) & (xyxy[:, 3] - xyxy[:, 1] >= 4)
        self.timings["propose"] = time.perf_counter() - t
        return xyxy[keep], conf[keep], columns[keep]

    def boxes_from_raw(
        self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Proposals from YOLO boxes of every class: those at ``yolo_confidence`` or more,
        class-agnostic NMS at ``yolo_iou``, the best ``yolo_boxes``."""
        from torchvision.ops import nms

        xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
        conf, cls = np.asarray(conf, np.float32), np.asarray(cls).astype(int)
        sure = conf >= self.config.yolo_confidence
        xyxy, conf, cls = xyxy[sure], conf[sure], cls[sure]
        if len(xyxy):
            keep = nms(torch.from_numpy(xyxy), torch.from_numpy(conf), self.config.yolo_iou)
            keep = keep[: self.config.yolo_boxes].numpy()
            xyxy, conf, cls = xyxy[keep], conf[keep], cls[keep]
        columns = np.array([self._yolo_column.get(int(c), -1) for c in cls], dtype=int)
        return xyxy, conf.astype(np.float64), columns

    def _yolo_boxes(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with model_lock(self.yolo):
            try:
                result = self.yolo.predict(
                    [image],
                    conf=self.config.yolo_confidence,
                    iou=self.config.yolo_iou,
                    imgsz=self.config.yolo_image_size,
                    max_det=self.config.yolo_boxes,
                    agnostic_nms=True,
                    verbose=False,
                )[0]
            finally:
                apply_threads(self.threads)
        boxes = result.boxes
        xyxy = boxes.xyxy.cpu().numpy().reshape(-1, 4) if boxes is not None else np.zeros((0, 4))
        conf = boxes.conf.cpu().numpy() if boxes is not None else np.zeros(0)
        cls = boxes.cls.cpu().numpy().astype(int) if boxes is not None else np.zeros(0, int)
        columns = np.array([self._yolo_column.get(int(c), -1) for c in cls], dtype=int)
        return xyxy.astype(np.float32), conf, columns

    # -- features -------------------------------------------------------------------------
    def features(
        self,
        image: Image.Image,
        boxes: np.ndarray,
        yolo_conf: np.ndarray | None = None,
        yolo_column: np.ndarray | None = None,
    ) -> np.ndarray:
        """The feature matrix [n, layout.width] of ``boxes`` (pixels) in ``image``."""
        t = time.perf_counter()
        n = len(boxes)
        layout = self.layout
        x = np.zeros((n, layout.width), np.float32)
        if n == 0:
            return x
        visual = self._roi_features(image, boxes) if self.config.mode == "roi" else None
        if visual is None:
            visual = self._crop_features(image, boxes)
        with torch.inference_mode():
            probs = self.network.classifier(visual).softmax(dim=1)
            per_category = torch.zeros(n, len(layout.categories) + 1)
            per_category.index_add_(1, self._imagenet_column, probs)
        x[:, layout.visual] = visual.numpy()
        x[:, layout.imagenet] = per_category.numpy()
        if yolo_conf is not None and yolo_column is not None:
            rows = np.nonzero(yolo_column >= 0)[0]
            x[rows, layout.yolo.start + yolo_column[rows]] = yolo_conf[rows]
        width, height = image.size
        g = x[:, layout.yolo.stop :]
        w = (boxes[:, 2] - boxes[:, 0]) / width
        h = (boxes[:, 3] - boxes[:, 1]) / height
        g[:, 0] = (boxes[:, 0] + boxes[:, 2]) / (2 * width)
        g[:, 1] = (boxes[:, 1] + boxes[:, 3]) / (2 * height)
        g[:, 2], g[:, 3] = w, h
        g[:, 4] = np.log(np.maximum(w * width, 1) / np.maximum(h * height, 1))
        g[:, 5] = (yolo_column == -2) if yolo_column is not None else 0.0
        self.timings["features"] = time.perf_counter() - t
        return x

    def _roi_features(self, image: Image.Image, boxes: np.ndarray) -> torch.Tensor:
        from torchvision.ops import roi_align

        scale = self.config.image_size / max(image.size)
        w = max(32, round(image.width * scale / 32) * 32)
        h = max(32, round(image.height * scale / 32) * 32)
        resized = np.asarray(image.convert("RGB").resize((w, h), Image.BILINEAR), np.float32)
        batch = (torch.from_numpy(resized).permute(2, 0, 1)[None] / 255.0 - 0.5) / 0.5
        fmap = self.feature_map(batch)
        with torch.inference_mode():
            stride_x, stride_y = image.width / fmap.shape[3], image.height / fmap.shape[2]
            rois = torch.from_numpy(boxes.astype(np.float32)).clone()
            rois[:, [0, 2]] /= stride_x
            rois[:, [1, 3]] /= stride_y
            rois = torch.cat([torch.zeros(len(rois), 1), rois], dim=1)
            pooled = roi_align(fmap, rois, output_size=(2, 2), sampling_ratio=2, aligned=True)
            return pooled.mean(dim=(2, 3))

    def _crop_features(self, image: Image.Image, boxes: np.ndarray) -> torch.Tensor:
        crops = [crop(image, Box(*map(float, b))) for b in boxes]
        heads = []
        for start in range(0, len(crops), 32):
            batch = self.effnet.preprocess(crops[start : start + 32])
            with torch.inference_mode():
                heads.append(
                    self.network.forward_head(self.network.forward_features(batch), pre_logits=True)
                )
        return torch.cat(heads)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[len(a), len(b)] IoU of two box arrays [n, 4] (x1, y1, x2, y2)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
