"""Draw the garments found inside people on held-out fashion photos: artifacts/outfits.png.

Each photo twice: left today's person object (searching every garment category), right the
garment objects with their categories and scores. The classifier is fitted on the
catalog's training groups only; the photos are held-out ones with the most confident
person (YOLO, cached by benchmarks/eval_garments.py).

    .venv/bin/python benchmarks/draw_outfits.py --catalog catalogs/hm-effnet-lite0 --dataset hm \
        --catalog catalogs/clothing-effnet-lite0 --dataset clothing
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from eval_garments import CACHE, Cached, scan  # noqa: E402

from catalog import Catalog  # noqa: E402
from catalog.taught.garment_files import GarmentFit, catalog_embed, fit_garments  # noqa: E402
from catalog.taught.garments import GarmentDetector  # noqa: E402
from shopthelook.core.config import load_settings  # noqa: E402
from shopthelook.core.images import load_image  # noqa: E402
from shopthelook.core.taxonomy import load_taxonomy  # noqa: E402

COLOURS = {
    "garment-upper": (220, 40, 40),
    "garment-lower": (40, 90, 220),
    "garment-full": (160, 40, 200),
    "shoes": (20, 150, 60),
    "accessories": (230, 140, 0),
    "underwear": (0, 170, 170),
}
SIDE = 360


def draw(image: Image.Image, objects, title: str) -> Image.Image:
    scale = SIDE / max(image.size)
    out = image.resize((round(image.width * scale), round(image.height * scale)))
    canvas = Image.new("RGB", (SIDE, SIDE + 18), "white")
    canvas.paste(out, (0, 18))
    d = ImageDraw.Draw(canvas)
    d.text((2, 2), title[:58], fill="black")
    for i, o in enumerate(objects):
        colour = COLOURS.get(o.category, (90, 90, 90))
        b = [o.box.x1 * scale, o.box.y1 * scale + 18, o.box.x2 * scale, o.box.y2 * scale + 18]
        inset = 2 * i
        d.rectangle(
            [b[0] + inset, b[1] + inset, b[2] - inset, b[3] - inset], outline=colour, width=3
        )
        label = o.category if len(o.search_categories) <= 1 else f"{o.label}: all garments"
        d.rectangle(
            [b[0] + inset, b[1] + inset, b[0] + inset + 7 * len(label) + 40, b[1] + inset + 12],
            fill=colour,
        )
        d.text((b[0] + inset + 2, b[1] + inset), f"{label} {o.score:.2f}", fill="white")
    return canvas


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", action="append", required=True)
    ap.add_argument("--dataset", action="append", required=True)
    ap.add_argument("--per-dataset", type=int, default=4)
    ap.add_argument("--out", default=str(REPO / "artifacts" / "outfits.png"))
    args = ap.parse_args()
    settings = load_settings()
    taxonomy = load_taxonomy(settings.taxonomy)
    panels = []
    for path, dataset in zip(args.catalog, args.dataset, strict=True):
        catalog = Catalog.load(path)
        fitted = fit_garments(catalog, fit=GarmentFit(split="train"))
        dets = scan(catalog, dataset, taxonomy, settings, CACHE / f"scan-{dataset}.jsonl")
        base = Cached(taxonomy)
        detector = GarmentDetector(
            base,
            fitted.classifier,
            fitted.priors,
            catalog_embed(catalog, settings),
            max_objects=settings.max_objects,
        )
        products = catalog.products.set_index("product_id")
        people = sorted(
            (
                (max(x.score for x in d if x.label == "person"), p)
                for p, d in dets.items()
                if p in products.index and any(x.label == "person" for x in d)
            ),
            reverse=True,
        )
        for _, pid in people[: args.per_dataset]:
            row = products.loc[pid]
            image = load_image(row["image"])
            base.current = dets[pid]
            own = f"{dataset} {pid[:10]}: {row['category']}"
            panels.append(draw(image, dets[pid], "today | " + own))
            panels.append(draw(image, detector.detect(image), "garments | " + own))
    columns = 4
    rows = (len(panels) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * SIDE, rows * (SIDE + 18)), "white")
    for i, p in enumerate(panels):
        sheet.paste(p, ((i % columns) * SIDE, (i // columns) * (SIDE + 18)))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}: {len(panels) // 2} photos")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
