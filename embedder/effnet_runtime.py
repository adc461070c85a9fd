"""Where an EfficientNet-Lite forward pass runs: PyTorch, ONNX Runtime or OpenVINO.

The accelerated runtimes execute the same graph (``EffNetFeatures``), converted once (to
OpenVINO IR, or to ONNX) and cached by the weights' fingerprint and the pooling
configuration, so all three give the same vectors to float precision. ``choose_runtime("auto")`` takes the fastest one installed
(measured in benchmarks/bench_embedder.py) and falls back to PyTorch, saying why, when a
runtime is missing or cannot load the graph.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from shopthelook.core.errors import BackboneError

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "onnxruntime", "openvino")
#: the order "auto" tries, fastest first (benchmarks/bench_embedder.py --runtimes)
AUTO_ORDER = ("openvino", "onnxruntime", "torch")


class TorchRuntime:
    name = "torch"

    def __init__(self, features: torch.nn.Module, threads: int = 2) -> None:
        # plain NCHW: channels-last measured slower here (63.8 vs 58.8 ms/img, README "Speed")
        self.features = features

    def __call__(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            embedding, head = self.features(batch)
        return embedding.numpy(), head.numpy()


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "shopthelook" / "onnx"


def _digest(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def export_onnx(features: torch.nn.Module, key: str, image_size: int) -> Path:
    """The features graph as ONNX (batch dimension dynamic), exported once per key."""
    path = cache_dir() / f"effnet-{_digest(key)}.onnx"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(2, 3, image_size, image_size)
    # a temporary name in the same folder, renamed when complete: readers never see half a file
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():  # the TorchScript exporter's deprecation notices
            warnings.simplefilter("ignore")
            _export(features, dummy, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _export(features: torch.nn.Module, dummy: torch.Tensor, tmp: str) -> None:
    torch.onnx.export(
        features,
        (dummy,),
        tmp,
        input_names=["pixels"],
        output_names=["embedding", "head"],
        dynamic_axes={"pixels": {0: "n"}, "embedding": {0: "n"}, "head": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )


class OnnxRuntime:
    name = "onnxruntime"

    def __init__(self, onnx_path: Path, threads: int = 2) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        embedding, head = self.session.run(None, {"pixels": batch.numpy()})
        return embedding, head


def export_openvino(features: torch.nn.Module, key: str, image_size: int) -> Path:
    """The features graph as OpenVINO IR (converted from PyTorch, no ONNX needed), cached."""
    dummy = torch.zeros(2, 3, image_size, image_size)
    return _cached_ir(features, f"effnet-{_digest(key)}", dummy, (-1, 3, image_size, image_size))


def _cached_ir(module: torch.nn.Module, name: str, example: torch.Tensor, shape) -> Path:
    """``module`` converted to OpenVINO IR with input ``shape`` (-1: dynamic), once per name."""
    import openvino as ov

    path = cache_dir() / f"{name}.xml"
    if path.exists() and path.with_suffix(".bin").exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # tracing warnings about Python-side shape arithmetic
        warnings.simplefilter("ignore")
        model = ov.convert_model(module, example_input=example, input=[shape])
    tmp = path.with_name(f".{path.stem}-{os.getpid()}.xml")
    ov.save_model(model, str(tmp), compress_to_fp16=False)
    os.replace(tmp.with_suffix(".bin"), path.with_suffix(".bin"))
    os.replace(tmp, path)  # the .xml last: it is what marks the pair complete
    return path


def _compile_on_cpu(ir_path: Path, threads: int):
    import openvino as ov

    core = ov.Core()
    return core.compile_model(
        core.read_model(str(ir_path)),
        "CPU",
        {
            "INFERENCE_NUM_THREADS": max(1, threads),
            "PERFORMANCE_HINT": "LATENCY",
            # f32: the same vectors as PyTorch (bf16 on CPUs that have it is twice as fast
            # again, but moves vectors by up to 0.03; see README "Speed")
            "INFERENCE_PRECISION_HINT": "f32",
        },
    )


class OpenVinoRuntime:
    name = "openvino"

    def __init__(self, ir_path: Path, threads: int = 2) -> None:
        self.compiled = _compile_on_cpu(ir_path, threads)

    def __call__(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        out = self.compiled(batch.numpy())
        return np.asarray(out[0]), np.asarray(out[1])


def choose_runtime(name: str, features: torch.nn.Module, key: str, image_size: int, threads: int):
    """The runtime called ``name`` ("auto": the fastest installed), PyTorch when it fails."""
    if name not in RUNTIMES:
        raise BackboneError(f"unknown embedding runtime {name!r}; choose one of {RUNTIMES}")
    wanted = AUTO_ORDER if name == "auto" else (name,)
    for candidate in wanted:
        if candidate == "torch":
            return TorchRuntime(features, threads)
        try:
            if candidate == "openvino":
                runtime = OpenVinoRuntime(export_openvino(features, key, image_size), threads)
            else:
                runtime = OnnxRuntime(export_onnx(features, key, image_size), threads)
        except ImportError:
            reason = f"{candidate} is not installed (pip install {candidate})"
        except Exception as exc:  # export or compile failures: fall back, say why
            reason = f"{candidate} could not load the network ({type(exc).__name__}: {exc})"
        else:
            return runtime
        if name != "auto":
            log.warning("embedding runtime %s; using PyTorch", reason)
        else:
            log.info("embedding runtime %s; trying the next", reason)
    return TorchRuntime(features, threads)


class _ForwardFeatures(torch.nn.Module):
    """A timm network's ``forward_features``: the last feature map, for RoI pooling."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.network.forward_features(batch)


class TorchFeatureMap:
    name = "torch"

    def __init__(self, network: torch.nn.Module) -> None:
        self.network = network

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.network.forward_features(batch)


class OpenVinoFeatureMap:
    """The feature map of one image of any height and width (both dynamic in the IR)."""

    name = "openvino"

    def __init__(self, network: torch.nn.Module, key: str, threads: int = 2) -> None:
        module = _ForwardFeatures(network).eval()
        name = f"effnet-fmap-{_digest(f'feature-map-{key}')}"
        path = _cached_ir(module, name, torch.zeros(1, 3, 320, 448), (1, 3, -1, -1))
        self.compiled = _compile_on_cpu(path, threads)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.compiled(batch.numpy())[0]))


def feature_map_runtime(name: str, network: torch.nn.Module, key: str, threads: int):
    """``network.forward_features`` on OpenVINO when ``name`` allows it (about 2.8x faster
    than PyTorch for a 448-px scene, the same map to 1e-4), else PyTorch, saying why."""
    if name not in RUNTIMES:
        raise BackboneError(f"unknown embedding runtime {name!r}; choose one of {RUNTIMES}")
    if name in ("auto", "openvino"):
        try:
            return OpenVinoFeatureMap(network, key, threads)
        except ImportError:
            reason = "openvino is not installed (pip install openvino)"
        except Exception as exc:  # conversion or compile failures: fall back, say why
            reason = f"openvino could not load the network ({type(exc).__name__}: {exc})"
        (log.warning if name == "openvino" else log.info)(
            "scene features: %s; using PyTorch", reason
        )
    return TorchFeatureMap(network)
