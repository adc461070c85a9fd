"""The ``clip:<model>/<weights>`` backbone: an open_clip model's image and text towers.

``<model>`` is an open_clip architecture name (``open_clip.list_models()``); ``<weights>`` is
the path of a local checkpoint, e.g. ``clip:ViT-B-32//models/open_clip_vit_b32.bin`` (the
first ``/`` separates the two, so an absolute path shows as ``//``). Weights are never
downloaded at run time: a hub tag such as ``laion2b_s34b_b79k`` is refused with a message
saying to download the checkpoint and give its path.

``<weights>`` = ``random`` builds the architecture with seeded random weights. It is for tests
only (a warning is logged): ``clip:stl-tiny-test/random`` is a tiny ViT registered here so
that tests of CLIP-based code (this backbone, SAME, OAAR) run in a second on a CPU.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from embedder.base import l2_normalize
from embedder.batching import BatchedBackbone
from shopthelook.core.config import apply_threads
from shopthelook.core.errors import BackboneError

log = logging.getLogger(__name__)

RANDOM_WEIGHTS = "random"
TINY_TEST_MODEL = "stl-tiny-test"
TINY_TEST_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
_lock = threading.Lock()


def register_model_config(name: str, config: dict) -> None:
    """Make an open_clip architecture ``name`` available (via open_clip.add_model_config)."""
    import open_clip

    if name in open_clip.list_models():
        return
    folder = Path(tempfile.gettempdir()) / "shopthelook-open-clip-configs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)


def split_spec(argument: str) -> tuple[str, str]:
    """'ViT-B-32//ckpt.bin' -> ('ViT-B-32', '/ckpt.bin'); the first '/' separates."""
    model, slash, weights = argument.partition("/")
    if not slash or not model or not weights:
        raise BackboneError(
            f"backbone clip:{argument}: write clip:<model>/<checkpoint path> "
            f"(e.g. clip:ViT-B-32//models/vit_b32.bin) or clip:{TINY_TEST_MODEL}/random in tests"
        )
    return model, weights


def canonical_argument(argument: str) -> str:
    model, weights = split_spec(argument)
    if weights != RANDOM_WEIGHTS and Path(weights).expanduser().is_file():
        weights = str(Path(weights).expanduser().resolve())
    return f"{model}/{weights}"


@lru_cache(maxsize=4)
def _load(model_name: str, weights: str):
    import open_clip

    if model_name == TINY_TEST_MODEL:
        register_model_config(TINY_TEST_MODEL, TINY_TEST_CONFIG)
    if model_name not in open_clip.list_models():
        raise BackboneError(
            f"backbone clip:{model_name}/{weights}: unknown open_clip model {model_name!r} "
            "(see open_clip.list_models(), e.g. ViT-B-32)"
        )
    if weights == RANDOM_WEIGHTS:
        log.warning("clip:%s/random has random weights: for tests only", model_name)
        pretrained = None
    elif Path(weights).expanduser().is_file():
        pretrained = str(Path(weights).expanduser().resolve())
    elif weights in open_clip.list_pretrained_tags_by_model(model_name):
        raise BackboneError(
            f"backbone clip:{model_name}/{weights}: {weights!r} is an open_clip hub tag and weights "
            "are never downloaded at run time; download the checkpoint where a network is "
            f"available and give its path: clip:{model_name}//path/to/checkpoint.bin"
        )
    else:
        raise BackboneError(
            f"backbone clip:{model_name}/{weights}: no such checkpoint file "
            f"(give the path of a local open_clip checkpoint for {model_name})"
        )
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # 'random' weights must be the same in every process
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=pretrained
            )
        tokenizer = open_clip.get_tokenizer(model_name)
    except BackboneError:
        raise
    except Exception as exc:  # a checkpoint that does not fit the architecture, or corrupt
        raise BackboneError(
            f"backbone clip:{model_name}/{weights}: cannot be loaded ({type(exc).__name__}: {exc})"
        ) from None
    model.eval()
    return model, preprocess, tokenizer


class ClipBackbone(BatchedBackbone):
    def __init__(self, argument: str, *, threads: int | None = None) -> None:
        model_name, weights = split_spec(canonical_argument(argument))
        self.name = f"clip:{model_name}/{weights}"
        self.model_name, self.weights, self.threads = model_name, weights, threads
        with _lock:
            self.model, self.preprocess, self.tokenizer = _load(model_name, weights)
        with torch.inference_mode():
            probe = self.model.encode_image(torch.zeros(1, 3, *self._input_size()))
        self.dim = int(probe.shape[-1])

    def _input_size(self) -> tuple[int, int]:
        size = self.model.visual.image_size
        return (size, size) if isinstance(size, int) else tuple(size)

    @property
    def has_text(self) -> bool:
        return True

    def _embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        if self.threads:
            apply_threads(self.threads)
        batch = torch.stack([self.preprocess(img) for img in images])
        with torch.inference_mode():
            return self.model.encode_image(batch).float().numpy()

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [n, dim] L2-normalised text embeddings (same space as the images)."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.threads:
            apply_threads(self.threads)
        with torch.inference_mode():
            tokens = self.tokenizer(texts)
            return l2_normalize(self.model.encode_text(tokens).float().numpy())
