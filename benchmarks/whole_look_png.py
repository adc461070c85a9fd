"""PNGs of a few whole looks next to the objects' top-1 products (eval_whole_look.py)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

THUMB = 130


def _thumb(path: str | None, ok: bool) -> Image.Image:
    tile = Image.new("RGB", (THUMB, THUMB), "white")
    if path and Path(path).exists():
        with Image.open(path) as im:
            im = ImageOps.contain(im.convert("RGB"), (THUMB - 8, THUMB - 8))
            tile.paste(im, ((THUMB - im.width) // 2, (THUMB - im.height) // 2))
    if ok:
        ImageDraw.Draw(tile).rectangle([0, 0, THUMB - 1, THUMB - 1], outline=(0, 160, 60), width=5)
    return tile


def draw_sets(catalog, rooms, truth, runs, out: Path, n: int, tag: str) -> None:
    """``runs``: (variant, test rooms, chooser, weight, prior) per scored fold."""
    from eval_whole_look import as_result

    images = dict(zip(catalog.products["product_id"], catalog.products["image"]))
    done = 0
    for _, test, chooser, weight, prior in runs:
        for room in test:
            result = as_result(rooms[room])
            look = chooser.choose(result, weight=weight, prior=prior)
            top1 = [result.objects[p.object].products[0].product_id for p in look.products]
            chosen = look.product_ids()
            if len(chosen) < 3 or chosen == top1 or done >= n:
                continue
            gt = truth[room]
            with Image.open(rooms[room]["image"]) as im:
                scene = ImageOps.contain(im.convert("RGB"), (2 * THUMB * 2, 2 * THUMB + 30))
            width = scene.width + 10 + THUMB * len(chosen)
            canvas = Image.new("RGB", (width, 2 * THUMB + 40), "white")
            canvas.paste(scene, (0, 0))
            draw = ImageDraw.Draw(canvas)
            x0 = scene.width + 10
            draw.text((x0, 0), "top-1 of each object", fill="black")
            draw.text((x0, THUMB + 20), "whole look (green: in the room)", fill="black")
            for k, (a, b) in enumerate(zip(top1, chosen)):
                canvas.paste(_thumb(images.get(a), a in gt), (x0 + k * THUMB, 12))
                canvas.paste(_thumb(images.get(b), b in gt), (x0 + k * THUMB, THUMB + 32))
            canvas.save(out / f"set-{tag}-{done}-{room[:40]}.png")
            done += 1
