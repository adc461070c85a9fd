"""Draw the detector's boxes and labels on held-out IKEA rooms: one PNG contact sheet.

    .venv/bin/python benchmarks/draw_taught.py --catalog catalogs/ikea-yolo-taught \
        --out artifacts/taught-rooms.png [--rooms 12] [--detector auto|yolo|zero-shot]
"""

from __future__ import annotations

import argparse

from PIL import Image, ImageDraw

from catalog.taught import select_scenes
from shopthelook.core.config import load_settings
from shopthelook.core.datasets import load_pairs, load_scenes
from shopthelook.core.images import load_image
from shopthelook.pipeline import ShopTheLook

COLOURS = [
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#42d4f4",
    "#f032e6",
    "#9a6324",
    "#800000",
    "#000075",
]


def label_box(draw: ImageDraw.ImageDraw, box, text: str, colour: str) -> None:
    """A box outline with its label on a filled strip at its top-left corner."""
    draw.rectangle(box, outline=colour, width=3)
    draw.rectangle([box[0], box[1], box[0] + 6 * len(text) + 6, box[1] + 12], fill=colour)
    draw.text((box[0] + 2, box[1]), text, fill="white")


def contact_sheet(tiles: list[Image.Image], cols: int = 3, tile: int = 480) -> Image.Image:
    rows = (len(tiles) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * tile, rows * tile), "white")
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % cols) * tile, (i // cols) * tile))
    return sheet


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--catalog", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--rooms", type=int, default=12)
    ap.add_argument("--detector", default="auto")
    args = ap.parse_args()
    settings = load_settings(detector=args.detector)
    stl = ShopTheLook(args.catalog, settings)
    scenes = load_scenes("ikea", data_root=settings.data_root)
    pairs = load_pairs("ikea", data_root=settings.data_root)
    image_of = dict(zip(scenes["scene_id"].astype(str), scenes["image"]))
    held = [s for s in select_scenes(image_of, "heldout") if s in set(pairs["scene_id"])]
    category = dict(zip(stl.catalog.products["product_id"], stl.catalog.products["category"]))
    tiles = []
    for scene in held[: args.rooms]:
        image = load_image(image_of[scene])
        truth = sorted(
            {category.get(p, "?") for p in pairs[pairs["scene_id"] == scene]["product_id"]}
        )
        image.thumbnail((480, 480))
        scale = image.width / load_image(image_of[scene]).width
        draw = ImageDraw.Draw(image)
        for i, d in enumerate(stl.detector.detect(load_image(image_of[scene]))):
            b = [v * scale for v in d.box.as_list()]
            colour = COLOURS[i % len(COLOURS)]
            mark = "" if d.category in truth else " x"
            label_box(draw, b, f"{d.category} {d.score:.2f}{mark}", colour)
        draw.rectangle([0, image.height - 14, image.width, image.height], fill="black")
        draw.text((2, image.height - 13), "truth: " + ", ".join(truth)[:90], fill="white")
        tiles.append(image)
    contact_sheet(tiles).save(args.out)
    print(f"{args.out}: {len(tiles)} held-out rooms, detector {stl.describe()['detector']}")


if __name__ == "__main__":
    main()
