"""Choose the EfficientNet-Lite embedding (pooling, input size, crop margin) on the IKEA rooms.

Each configuration is measured as the engine runs: its own catalog of the 2,292 IKEA
products, then ``evaluate_looks`` (the protocol of ``shopthelook eval looks``) with the
default detector's boxes (detected once and cached: every configuration sees the same
objects). The rooms are split in two by a hash of their id: configurations are compared on
the *tune* half, and the *report* half says whether the choice holds on rooms it was not
chosen on.

    .venv/bin/python benchmarks/eval_effnet_ikea.py                       # the sweep
    .venv/bin/python benchmarks/eval_effnet_ikea.py --configs yolo effnet-lite2:224:avg:0
    .venv/bin/python benchmarks/eval_effnet_ikea.py --out artifacts/effnet-sweep.json

A configuration is ``yolo``, ``<variant>:<size>:<pooling>[+s3,s4]:<margin>[:letterbox]``, or
several of those joined with ``+`` (concatenated, each L2-normalised, weight 1).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog import Catalog  # noqa: E402
from detector import create_detector  # noqa: E402
from embedder import create_backbone  # noqa: E402
from embedder.concat import ConcatBackbone  # noqa: E402
from embedder.effnet import EffNetBackbone, EffNetConfig  # noqa: E402
from embedder.head import Embedder  # noqa: E402
from shopthelook.core.config import load_settings  # noqa: E402
from shopthelook.core.datasets import dataset_file, load_pairs, load_scenes  # noqa: E402
from shopthelook.core.taxonomy import load_taxonomy  # noqa: E402
from shopthelook.evaluate import evaluate_looks  # noqa: E402
from shopthelook.pipeline import ShopTheLook  # noqa: E402

DEFAULT_CONFIGS = [
    "yolo:0",
    "effnet-lite2:224:avg:0",
    "effnet-lite2:224:gem:0",
    "effnet-lite2:224:avg+s3:0",
    "effnet-lite2:224:avg:0:letterbox",
    "effnet-lite2:160:avg:0",
    "effnet-lite2:192:avg:0",
    "effnet-lite2:260:avg:0",
    "effnet-lite2:224:avg:0.05",
    "effnet-lite2:224:avg:0.1",
    "effnet-lite0:224:avg:0",
    "yolo:0+effnet-lite2:224:avg:0",
]


class CachedDetector:
    """The real detector, run once per distinct photo."""

    def __init__(self, inner) -> None:
        self.inner, self._cache = inner, {}
        self.name, self.max_objects = inner.name, inner.max_objects

    def detect(self, image):
        key = hashlib.sha1(image.resize((64, 64)).tobytes()).hexdigest() + str(image.size)
        if key not in self._cache:
            self._cache[key] = self.inner.detect(image)
        return self._cache[key]

    def __getattr__(self, name):
        return getattr(self.inner, name)


def parse(spec: str, settings, runtime: str = "auto"):
    """(backbone, crop margin) for a configuration spec."""
    blocks = re.split(r"\+(?=yolo|effnet)", spec)
    if len(blocks) > 1:  # a concatenation; the crop margin is the last block's
        built = [parse(block, settings, runtime) for block in blocks]
        return ConcatBackbone([(b, 1.0) for b, _ in built]), built[-1][1]
    fields = spec.split(":")
    if fields[0] == "yolo":
        return create_backbone("yolo", settings), float(fields[1]) if len(fields) > 1 else 0.0
    variant, size, pooling, margin = fields[:4]
    resize = fields[4] if len(fields) > 4 else "stretch"
    pooling, _, extra = pooling.partition("+")
    stages = tuple(int(s.removeprefix("s")) for s in extra.split(",") if s)
    config = EffNetConfig(int(size), pooling, extra_stages=stages, resize=resize)
    backbone = EffNetBackbone(variant, config=config, threads=settings.threads, runtime=runtime)
    return backbone, float(margin)


def split_rooms(scene_ids) -> dict[str, set[str]]:
    halves: dict[str, set[str]] = {"tune": set(), "report": set()}
    for s in scene_ids:
        half = "tune" if int(hashlib.sha1(s.encode()).hexdigest(), 16) % 2 == 0 else "report"
        halves[half].add(s)
    return halves


def summary(evaluation) -> dict:
    d = evaluation.as_dict()
    return {
        "all": d["overall"]["recall"],
        "covered": d["covered"]["recall"],
        "coverage": d["overall"]["coverage"],
        "pairs": d["overall"]["pairs"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runtime", default="auto", help="EfficientNet runtime (same vectors)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args()
    settings = load_settings(threads=args.threads)
    taxonomy = load_taxonomy(settings.taxonomy)
    scenes, pairs = load_scenes("ikea"), load_pairs("ikea")
    halves = split_rooms(set(pairs["scene_id"]) & set(scenes["scene_id"]))
    detector = CachedDetector(create_detector(settings, taxonomy))
    results = {}
    for spec in args.configs:
        backbone, margin = parse(spec, settings, args.runtime)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            catalog = Catalog.build(
                dataset_file("ikea", "products"),
                embedder=Embedder(backbone),
                taxonomy=taxonomy,
                out=Path(tmp) / "catalog",
                settings=settings,
            )
        build_s = time.perf_counter() - started
        pipeline = ShopTheLook(
            catalog,
            settings.replace(crop_margin=margin),
            detector=detector,
            embedder=Embedder(backbone),
            taxonomy=taxonomy,
        )
        row = {"build_seconds": round(build_s, 1)}
        for half, ids in halves.items():
            ev = evaluate_looks(pipeline, scenes, pairs, scene_ids=ids)
            row[half] = summary(ev)
            row[f"{half}_embed_ms"] = round(1000 * ev.timings.get("embed", float("nan")), 1)
        results[spec] = row
        t, r = row["tune"], row["report"]
        print(
            f"{spec:34s} tune all R@1 {t['all']['1']:.3f} R@10 {t['all']['10']:.3f} "
            f"covered R@1 {t['covered']['1']:.3f} R@10 {t['covered']['10']:.3f} | report all "
            f"R@1 {r['all']['1']:.3f} R@10 {r['all']['10']:.3f} | embed "
            f"{row['tune_embed_ms']} ms/scene, build {build_s:.0f} s",
            flush=True,
        )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
    best = max(
        results, key=lambda s: (results[s]["tune"]["all"]["1"], results[s]["tune"]["all"]["10"])
    )
    print(f"best on the tune half by R@1 then R@10: {best}")
    print(json.dumps({"rooms": {h: len(v) for h, v in halves.items()}}))


if __name__ == "__main__":
    main()
