"""Handcrafted visual features on pictures whose answer is known by construction."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from embedder.hvf import (
    HSV_BINS,
    LBP_BINS,
    STAT_NAMES,
    HvfBackbone,
    attractiveness_stats,
    colour_histogram,
    lbp_histogram,
)
from tests.conftest import draw_image


def _hue_histogram(image):
    return colour_histogram(image).reshape(HSV_BINS).sum(axis=(1, 2))


def _stripes(size=128, period=8):
    x = (np.arange(size) // (period // 2)) % 2 * 255
    return Image.fromarray(np.tile(x, (size, 1)).astype(np.uint8)).convert("RGB")


@pytest.mark.parametrize(
    "colour,hue_bin",
    [((230, 10, 10), 0), ((250, 5, 60), 0), ((20, 200, 30), 3), ((20, 40, 220), 5)],
)
def test_hue_histogram_peaks_at_the_colour(colour, hue_bin):
    hist = _hue_histogram(Image.new("RGB", (50, 40), colour))
    assert int(np.argmax(hist)) == hue_bin
    assert hist.sum() == pytest.approx(1.0)


def test_colour_histogram_separates_saturation_and_value():
    joint = colour_histogram(Image.new("RGB", (20, 20), (250, 0, 0))).reshape(HSV_BINS)
    assert joint[0, -1, -1] == pytest.approx(1.0)  # red, fully saturated, bright
    grey = colour_histogram(Image.new("RGB", (20, 20), (128, 128, 128))).reshape(HSV_BINS)
    assert grey[:, 0, 1].sum() == pytest.approx(1.0)  # unsaturated, mid value


def test_lbp_histogram_has_59_bins_and_reads_texture():
    flat = lbp_histogram(Image.new("RGB", (32, 32), (90, 90, 90)))
    assert flat.shape == (LBP_BINS,) and flat.sum() == pytest.approx(1.0)
    assert flat.max() == pytest.approx(1.0)  # every pixel the same pattern (all >= centre)
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    noisy = lbp_histogram(noise)
    assert noisy[-1] > 0.2  # random noise is mostly non-uniform patterns
    assert noisy[-1] > lbp_histogram(_stripes())[-1]
    assert np.count_nonzero(noisy) > 40


def test_attractiveness_stats_names_and_ranges():
    stats = attractiveness_stats(draw_image(4))
    assert tuple(stats) == STAT_NAMES
    assert all(isinstance(v, float) and np.isfinite(v) for v in stats.values())
    assert 0 <= stats["brightness"] <= 1 and 0 <= stats["saturation"] <= 1
    assert 0 <= stats["entropy"] <= 8 and 0 <= stats["naturalness"] <= 1


def test_blurred_image_is_less_sharp():
    sharp = _stripes()
    blurred = sharp.filter(ImageFilter.GaussianBlur(3))
    assert (
        attractiveness_stats(blurred)["sharpness"] < 0.2 * attractiveness_stats(sharp)["sharpness"]
    )


def test_flat_grey_image_has_no_colour_contrast_or_entropy():
    stats = attractiveness_stats(Image.new("RGB", (64, 48), (120, 120, 120)))
    assert stats["colourfulness"] == pytest.approx(0.0, abs=1e-9)
    assert stats["rms_contrast"] == pytest.approx(0.0, abs=1e-9)
    assert stats["entropy"] == pytest.approx(0.0, abs=1e-9)
    assert stats["sharpness"] == pytest.approx(0.0, abs=1e-12)
    assert stats["brightness"] == pytest.approx(120 / 255, abs=0.01)


def test_vivid_image_is_more_colourful_and_contrast_is_half_for_black_white():
    halves = np.zeros((128, 256, 3), dtype=np.uint8)  # long side 256: not rescaled
    halves[:, 128:] = 255
    stats = attractiveness_stats(Image.fromarray(halves))
    assert stats["rms_contrast"] == pytest.approx(0.5, abs=0.01)
    assert stats["entropy"] == pytest.approx(1.0, abs=0.05)
    vivid = np.zeros((40, 40, 3), dtype=np.uint8)
    vivid[:, :20] = (255, 0, 0)
    vivid[:, 20:] = (0, 0, 255)
    assert attractiveness_stats(Image.fromarray(vivid))["colourfulness"] > 100
    assert stats["colourfulness"] < 1.0


def test_natural_green_reads_as_natural():
    grass = Image.new("RGB", (32, 32), (40, 180, 50))  # hue ~125 deg, saturation ~0.78
    assert attractiveness_stats(grass)["naturalness"] > 0.9
    assert attractiveness_stats(Image.new("RGB", (32, 32), (120, 120, 120)))["naturalness"] == 0.0


def test_stats_accept_paths(tmp_path):
    path = tmp_path / "x.png"
    draw_image(2).save(path)
    assert attractiveness_stats(path) == attractiveness_stats(draw_image(2))


def test_hvf_finds_the_same_colour_and_texture_closer():
    backbone = HvfBackbone()
    red_a, red_b = draw_image(9, (80, 80)), draw_image(9, (120, 120))  # same picture, two sizes
    other = draw_image(10, (80, 80))
    v = backbone.embed_images([red_a, red_b, other])
    assert v.shape == (3, backbone.dim) == (3, 72 + 59 + 7)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.05
