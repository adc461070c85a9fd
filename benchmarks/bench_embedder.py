"""Milliseconds per image of embedding backbones at batch 1 and batch 8 (medians).

    .venv/bin/python benchmarks/bench_embedder.py                      # yolo and hvf
    .venv/bin/python benchmarks/bench_embedder.py --backbone random --backbone yolo+hvf*0.5
    .venv/bin/python benchmarks/bench_embedder.py --backbone effnet-lite2 \
        --runtime torch --runtime onnxruntime --runtime openvino --size 160 --size 224

Images are decoded before timing (the number is the backbone's own cost: preprocessing and
forward pass). Real IKEA product photos are used when ../shared is present, drawn pictures
otherwise. Torch runs with --threads (default 2, the deployment setting). Target for yolo:
about 20 ms per crop at batch 8 with 2 threads on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedder import create_backbone  # noqa: E402
from shopthelook.core.config import Settings, apply_threads  # noqa: E402
from shopthelook.core.images import load_image  # noqa: E402


def sample_images(n: int, settings: Settings):
    if settings.data_root and (settings.data_root / "ikea" / "products").is_dir():
        paths = sorted((settings.data_root / "ikea" / "products").glob("*.jpg"))[:n]
        if len(paths) == n:
            return [load_image(p) for p in paths], "IKEA product photos"
    from PIL import Image, ImageDraw

    images = []
    for i in range(n):
        img = Image.new("RGB", (400, 300), (40 * i % 255, 90, 160))
        ImageDraw.Draw(img).ellipse([50 + i, 40, 300, 260], fill=(200, 30 * i % 255, 20))
        images.append(img)
    return images, "drawn 400x300 pictures"


def time_backbone(backbone, images, batch: int, repeats: int) -> float:
    """Median milliseconds per image over ``repeats`` calls of ``batch`` images each."""
    backbone.embed_images(images[:batch], batch_size=batch)  # warm-up
    per_image = []
    for r in range(repeats):
        start = (r * batch) % (len(images) - batch + 1)
        chunk = images[start : start + batch]
        t0 = time.perf_counter()
        backbone.embed_images(chunk, batch_size=batch)
        per_image.append((time.perf_counter() - t0) * 1000 / batch)
    return statistics.median(per_image)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", action="append", help="registry name (repeatable)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--runtime", action="append", help="EfficientNet runtime (repeatable; default auto)"
    )
    parser.add_argument(
        "--size", action="append", type=int, help="EfficientNet input side (repeatable)"
    )
    parser.add_argument("--ratio", action="store_true", help="print each row's ratio to the first")
    args = parser.parse_args()
    settings = Settings().replace(threads=args.threads)
    apply_threads(args.threads)
    images, source = sample_images(32, settings)
    print(f"{len(images)} {source}; torch threads {args.threads}; medians of {args.repeats} calls")
    first = None
    for name, runtime, size in variants(args):
        backbone = build(name, runtime, size, settings)
        b1 = time_backbone(backbone, images, 1, args.repeats)
        b8 = time_backbone(backbone, images, 8, args.repeats)
        first = first or (b1, b8)
        label = backbone.name + (
            f" {backbone.runtime.name} {backbone.config.image_size}px" if runtime else ""
        )
        ratio = f"   x{first[0] / b1:4.2f} / x{first[1] / b8:4.2f}" if args.ratio else ""
        print(
            f"{label:34s} dim {backbone.dim:5d}   batch 1: {b1:7.1f} ms/img"
            f"   batch 8: {b8:7.1f} ms/img{ratio}",
            flush=True,
        )
    return 0


def variants(args):
    """(backbone name, runtime or None, input size or None) for every row to time."""
    for name in args.backbone or ["yolo", "hvf"]:
        if not name.startswith("effnet"):
            yield name, None, None
            continue
        for runtime in args.runtime or ["auto"]:
            for size in args.size or [None]:
                yield name, runtime, size


def build(name: str, runtime: str | None, size: int | None, settings: Settings):
    if runtime is None:
        return create_backbone(name, settings)
    from embedder.effnet import EffNetBackbone, EffNetConfig

    config = EffNetConfig(image_size=size) if size else None
    return EffNetBackbone(name, config=config, threads=settings.threads, runtime=runtime)


if __name__ == "__main__":
    raise SystemExit(main())
