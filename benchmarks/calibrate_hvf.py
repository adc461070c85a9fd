"""Reference mean / std of the hvf attractiveness statistics (embedder.hvf.STAT_MEAN/STAT_STD).

    .venv/bin/python benchmarks/calibrate_hvf.py --per-source 150

Samples IKEA product and room photos and H&M article photos (evenly spaced rows), computes
the statistics as the hvf backbone transforms them (sharpness as log10) and prints the
constants to paste into embedder/hvf.py, next to the ones in use.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedder.hvf import STAT_MEAN, STAT_NAMES, STAT_STD, attractiveness_stats  # noqa: E402
from shopthelook.core.config import Settings  # noqa: E402

SOURCES = (("ikea", "products.csv"), ("ikea", "rooms.csv"), ("hm", "articles.csv"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-source", type=int, default=150)
    args = parser.parse_args()
    root = Settings().data_root
    if root is None:
        print("../shared/data not found", file=sys.stderr)
        return 2
    rows = []
    for folder, table in SOURCES:
        images = pd.read_csv(root / folder / table, dtype=str)["image"]
        picks = images.iloc[np.linspace(0, len(images) - 1, args.per_source).astype(int)]
        for rel in picks:
            stats = attractiveness_stats(root / folder / rel)
            stats["sharpness"] = float(np.log10(stats["sharpness"] + 1e-6))
            rows.append([stats[n] for n in STAT_NAMES])
    values = np.array(rows)
    mean, std = values.mean(axis=0), values.std(axis=0)
    print(f"{len(values)} images from {', '.join(f'{a}/{b}' for a, b in SOURCES)}")
    for name, m, s, m0, s0 in zip(STAT_NAMES, mean, std, STAT_MEAN, STAT_STD, strict=True):
        print(f"{name:14s} mean {m:8.3f} (in use {m0:8.3f})   std {s:7.3f} (in use {s0:7.3f})")
    print("STAT_MEAN = np.array([" + ", ".join(f"{v:.3g}" for v in mean) + "])")
    print("STAT_STD = np.array([" + ", ".join(f"{v:.3g}" for v in std) + "])")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
