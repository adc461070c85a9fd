"""Does int8 pay for EfficientNet-Lite on this CPU? Speed and vector drift against float32.

The float32 graph (the same ONNX file the onnxruntime runtime uses) is quantised statically
with ONNX Runtime (QDQ, per-channel weights, calibrated on IKEA product photos that are not
among the timed ones), then both run on the same images. Also timed: OpenVINO in float32
and with its bf16 precision hint (on CPUs that have bf16). Drift is 1 - cosine between each
variant's vector and float32's; "same NN" is how often a product's nearest neighbour among
the timed photos stays the same.

    .venv/bin/python benchmarks/bench_effnet_int8.py --backbone effnet-lite0 --images 96
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedder.effnet import EffNetBackbone  # noqa: E402
from embedder.effnet_runtime import OnnxRuntime, export_onnx  # noqa: E402
from shopthelook.core.datasets import load_products  # noqa: E402
from shopthelook.core.images import load_image  # noqa: E402


def timed(fn, batches, repeats: int = 3) -> tuple[np.ndarray, float]:
    """(outputs of the last pass, median ms per image)."""
    per_image = []
    for _ in range(repeats):
        out = []
        started = time.perf_counter()
        for batch in batches:
            out.append(fn(batch))
        per_image.append((time.perf_counter() - started) * 1000 / sum(len(b) for b in batches))
    return np.concatenate(out), statistics.median(per_image)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbone", default="effnet-lite0")
    p.add_argument("--images", type=int, default=96)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)  # the quantiser's notes about unused constants
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    products = load_products("ikea").sample(n=args.images + 32, random_state=1)
    images = [load_image(path) for path in products["image"]]
    timed_images, calibration = images[: args.images], images[args.images :]
    backbone = EffNetBackbone(args.backbone, threads=args.threads, runtime="torch")
    size = backbone.config.image_size
    key = f"{args.backbone}-{backbone.weights_fingerprints()}-{backbone.config!r}-int8bench"
    fp32_path = export_onnx(backbone.features, key, size)
    batches = [backbone.preprocess(timed_images[i : i + 8]) for i in range(0, args.images, 8)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter({"pixels": backbone.preprocess([im]).numpy()} for im in calibration)

        def get_next(self):
            return next(self.items, None)

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        int8_path = Path(tmp) / "int8.onnx"
        quantize_static(
            str(fp32_path),
            str(int8_path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8,
        )
        runners = {
            "torch fp32": backbone.runtime,
            "onnxruntime fp32": OnnxRuntime(fp32_path, args.threads),
            "onnxruntime int8": OnnxRuntime(int8_path, args.threads),
        }
        try:
            import openvino as ov

            core = ov.Core()
            for hint in ("f32", "bf16"):
                compiled = core.compile_model(
                    core.read_model(str(fp32_path)),
                    "CPU",
                    {"INFERENCE_NUM_THREADS": args.threads, "INFERENCE_PRECISION_HINT": hint},
                )
                runners[f"openvino {hint}"] = lambda b, c=compiled: (
                    np.asarray(c(b.numpy())[0]),
                    None,
                )
        except ImportError:
            pass
        for name, runner in runners.items():
            runner(batches[0])  # warm-up
            rows[name] = timed(lambda b, r=runner: r(b)[0], batches)
    reference = rows["torch fp32"][0]
    ref_nn = nearest(reference)
    base_ms = rows["torch fp32"][1]
    print(f"{args.backbone} at {size} px, {args.images} IKEA product photos, batches of 8, "
          f"{args.threads} threads (medians of 3 passes)")  # fmt: skip
    for name, (vectors, ms) in rows.items():
        drift = 1 - np.sum(unit(vectors) * unit(reference), axis=1)
        same_nn = float(np.mean(nearest(vectors) == ref_nn))
        print(
            f"{name:18s} {ms:7.1f} ms/img  x{base_ms / ms:4.1f}  drift mean {drift.mean():.5f} "
            f"max {drift.max():.5f}  same NN {same_nn:.3f}"
        )


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def nearest(x: np.ndarray) -> np.ndarray:
    sim = unit(x) @ unit(x).T
    np.fill_diagonal(sim, -np.inf)
    return sim.argmax(axis=1)


if __name__ == "__main__":
    main()
