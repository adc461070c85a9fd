"""Shared fixtures: images the tests draw themselves, and the real data in ../shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from shopthelook.core.config import default_shared_root

SHARED = default_shared_root()


def _shared_or_skip(*parts: str) -> Path:
    if SHARED is None:
        pytest.skip("../shared is not beside the checkout: real data and weights unavailable")
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture(scope="session")
def shared_root() -> Path:
    return _shared_or_skip()


@pytest.fixture(scope="session")
def yolo_weights() -> Path:
    return _shared_or_skip("models", "yolov8n-coco.pt")


@pytest.fixture(scope="session")
def ikea_root() -> Path:
    return _shared_or_skip("data", "ikea")


def draw_image(seed: int, size: tuple[int, int] = (96, 80)) -> Image.Image:
    """A small synthetic picture: a coloured background with a few shapes."""
    rng = np.random.default_rng(seed)
    bg = tuple(int(v) for v in rng.integers(0, 255, 3))
    img = Image.new("RGB", size, bg)
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x1, y1 = (int(v) for v in rng.integers(0, min(size) // 2, 2))
        x2, y2 = x1 + int(rng.integers(8, size[0] // 2)), y1 + int(rng.integers(8, size[1] // 2))
        color = tuple(int(v) for v in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            draw.rectangle([x1, y1, x2, y2], fill=color)
        else:
            draw.ellipse([x1, y1, x2, y2], fill=color)
    return img


@pytest.fixture
def drawn_images() -> list[Image.Image]:
    return [draw_image(i) for i in range(6)]
