"""Crop -> product adaptation on IKEA: look-recall@K on rooms the training never saw.

1. The IKEA rooms are split (fixed seed) into evaluation rooms and training rooms; the
   training rooms are split again into fit / validation rooms.
2. In the training rooms, (crop, product) pairs are mined where a category has exactly one
   product in the room and exactly one detected object (embedder.adaptation).
3. Catalog photos of products in detectable categories get scene-like augmentations
   (backgrounds cut from fit rooms only, scale, occlusion, light).
4. A residual SAME head is trained with each product as a group (photo + crops + augmented
   photos); early stopping on crop->product recall@10 of the validation rooms' pairs.
5. Catalogs of all IKEA products are built without and with the head, and the project's
   look-recall (shopthelook.evaluate.evaluate_looks) is measured on the evaluation rooms.

    .venv/bin/python benchmarks/eval_adaptation.py --backbone yolo

Backbone vectors are cached by image content (artifacts/cache), so the second catalog and
the second evaluation do not re-embed anything. Writes artifacts/adaptation/results.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedder.adaptation import (  # noqa: E402
    CropPair,
    background_patches,
    crop_recall,
    mine_crop_pairs,
    pair_groups,
    scene_like,
)
from embedder.base import Backbone  # noqa: E402
from embedder.factory import create_backbone  # noqa: E402
from embedder.head import Embedder  # noqa: E402
from embedder.train_same import TrainConfig, peak_rss_mb, train_same  # noqa: E402
from shopthelook.core.config import REPO_ROOT, Settings, apply_threads  # noqa: E402
from shopthelook.core.datasets import load_pairs, load_products, load_scenes  # noqa: E402
from shopthelook.core.images import load_image  # noqa: E402
from shopthelook.core.taxonomy import load_taxonomy  # noqa: E402
from shopthelook.lookalikes import embed_cached  # noqa: E402


class ContentCachedBackbone(Backbone):
    """The same backbone, remembering vectors by image content (the catalog passes PIL images)."""

    def __init__(self, inner: Backbone) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.memory: dict[str, np.ndarray] = {}

    @staticmethod
    def key(image) -> str:
        return hashlib.md5(image.tobytes() + repr(image.size).encode()).hexdigest()

    def remember(self, images, vectors) -> None:
        for img, vec in zip(images, vectors, strict=True):
            self.memory[self.key(img)] = vec

    def embed_images(self, images, *, batch_size=16, show_progress=False):
        loaded = [img if not isinstance(img, (str, Path)) else load_image(img) for img in images]
        keys = [self.key(img) for img in loaded]
        missing = [i for i, k in enumerate(keys) if k not in self.memory]
        if missing:
            vecs = self.inner.embed_images([loaded[i] for i in missing], batch_size=batch_size)
            for i, v in zip(missing, vecs, strict=True):
                self.memory[keys[i]] = v
        return (
            np.stack([self.memory[k] for k in keys])
            if keys
            else np.zeros((0, self.dim), np.float32)
        )


def _rooms_key(rooms) -> str:
    return hashlib.sha1("\n".join(sorted(rooms)).encode()).hexdigest()[:12]


def save_mined(out_dir: Path, rooms, mined) -> None:
    """Crops as PNG + an index, so a rerun on the same training rooms skips the detector."""
    folder = out_dir / f"crops-{_rooms_key(rooms)}"
    folder.mkdir(parents=True, exist_ok=True)
    index = []
    for i, m in enumerate(mined):
        m.crop.save(folder / f"{i}.png")
        index.append({"file": f"{i}.png", "scene_id": m.scene_id, "product_id": m.product_id,
                      "category": m.category, "score": m.score})  # fmt: skip
    (folder / "index.json").write_text(json.dumps(index))


def load_mined(out_dir: Path, rooms):
    folder = out_dir / f"crops-{_rooms_key(rooms)}"
    if not (folder / "index.json").exists():
        return None
    rows = json.loads((folder / "index.json").read_text())
    return [CropPair(r["scene_id"], r["product_id"], r["category"], load_image(folder / r["file"]),
                     r["score"]) for r in rows]  # fmt: skip


def look_recall(products, embedder, detector, taxonomy, settings, scenes, pairs, rooms, ks):
    from catalog import Catalog
    from shopthelook.evaluate import evaluate_looks
    from shopthelook.pipeline import ShopTheLook

    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog.build(products, embedder=embedder, taxonomy=taxonomy, out=Path(tmp) / "c",
                                settings=settings, source="ikea")  # fmt: skip
        pipeline = ShopTheLook(
            catalog, settings, detector=detector, embedder=embedder, taxonomy=taxonomy
        )
        result = evaluate_looks(
            pipeline, scenes, pairs, ks=ks, scene_ids=set(rooms), show_progress=True
        )
    return result


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--backbone", default="yolo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-fraction", type=float, default=0.5, help="share of rooms held out")
    p.add_argument(
        "--val-fraction", type=float, default=0.2, help="share of training rooms for validation"
    )
    p.add_argument("--augment", type=int, default=2, help="scene-like copies per product photo")
    p.add_argument("--max-products", type=int, default=700, help="products that get augmentations")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--margin", type=float, default=0.1)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument(
        "--fixed-epochs",
        action="store_true",
        help="keep the last epoch (no early stopping on the small validation set)",
    )
    p.add_argument("--per-group", type=int, default=2)
    p.add_argument("--out", default=str(REPO_ROOT / "artifacts" / "adaptation"))
    args = p.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    settings = Settings()
    taxonomy = load_taxonomy(settings.taxonomy)
    rng = np.random.default_rng(args.seed)

    products = load_products("ikea", data_root=settings.data_root)
    products["category"] = taxonomy.categorize_table(products)
    scenes = load_scenes("ikea", data_root=settings.data_root)
    pairs = load_pairs("ikea", data_root=settings.data_root)
    rooms = sorted(set(pairs["scene_id"]) & set(scenes["scene_id"]))
    order = rng.permutation(len(rooms))
    n_eval = int(round(len(rooms) * args.eval_fraction))
    eval_rooms = [rooms[i] for i in order[:n_eval]]
    train_rooms = [rooms[i] for i in order[n_eval:]]
    n_val = int(round(len(train_rooms) * args.val_fraction))
    val_rooms, fit_rooms = train_rooms[:n_val], train_rooms[n_val:]
    assert not set(eval_rooms) & set(train_rooms)
    print(f"rooms: {len(fit_rooms)} fit, {len(val_rooms)} validation, {len(eval_rooms)} evaluation")

    backbone = ContentCachedBackbone(create_backbone(args.backbone, settings))
    from detector import create_detector

    detector = create_detector(settings, taxonomy)
    apply_threads(2)
    product_vecs, ok = embed_cached(backbone.inner, products["image"].tolist(), show_progress=True)
    products = products[ok].reset_index(drop=True)
    product_vecs = product_vecs[ok]
    print("remembering catalog vectors by content ...")
    for start in range(0, len(products), 128):
        imgs = [load_image(x) for x in products["image"].iloc[start : start + 128]]
        backbone.remember(imgs, product_vecs[start : start + 128])

    category_of = dict(zip(products["product_id"], products["category"], strict=True))
    t0 = time.perf_counter()
    train_pairs = pairs[pairs["scene_id"].isin(train_rooms)]
    mined = load_mined(out_dir, train_rooms)
    if mined is None:
        mined = mine_crop_pairs(scenes[scenes["scene_id"].isin(train_rooms)], train_pairs,
                                category_of, detector, margin=settings.crop_margin,
                                show_progress=True)  # fmt: skip
        save_mined(out_dir, train_rooms, mined)
    fit = [m for m in mined if m.scene_id in set(fit_rooms)]
    val = [m for m in mined if m.scene_id in set(val_rooms)]
    crop_vecs = {
        id(m): v for m, v in zip(mined, backbone.embed_images([m.crop for m in mined]), strict=True)
    }
    print(
        f"mined {len(mined)} crop/product pairs ({len(fit)} fit, {len(val)} val) in {time.perf_counter() - t0:.0f} s"
    )

    detectable = set(taxonomy.detectable_categories)
    candidates = products[products["category"].isin(detectable)]
    chosen = candidates.sample(min(args.max_products, len(candidates)), random_state=args.seed)
    fit_scene_images = scenes[scenes["scene_id"].isin(fit_rooms)]["image"].tolist()
    backgrounds = background_patches(fit_scene_images, rng, n=min(96, 2 * len(fit_scene_images)))
    t0 = time.perf_counter()
    aug_file = out_dir / (
        f"aug-{backbone.inner.name}-{backbone.dim}-{_rooms_key(fit_rooms)}-s{args.seed}"
        f"-n{args.max_products}-a{args.augment}.npz"
    )
    if aug_file.exists():  # the same rooms, products and seed give the same augmentations
        with np.load(aug_file) as f:
            aug_members = list(zip(f["pids"].tolist(), f["vectors"], strict=True))
    else:
        aug_members = []
        for pid, path in zip(chosen["product_id"], chosen["image"], strict=True):
            photo = load_image(path)
            augmented = [scene_like(photo, backgrounds, rng) for _ in range(args.augment)]
            for v in backbone.inner.embed_images(augmented):
                aug_members.append((pid, v))
        np.savez(aug_file, pids=np.asarray([a for a, _ in aug_members]),
                 vectors=np.stack([v for _, v in aug_members]))  # fmt: skip
    print(
        f"{len(aug_members)} scene-like augmentations of {len(chosen)} products in {time.perf_counter() - t0:.0f} s"
    )

    members = [(m.product_id, crop_vecs[id(m)]) for m in fit] + aug_members
    x, labels = pair_groups(products["product_id"].tolist(), product_vecs, members)
    pids, pcats = products["product_id"].tolist(), products["category"].tolist()

    def validate(head) -> float:
        cv = head.transform(np.stack([crop_vecs[id(m)] for m in val]))
        return crop_recall(cv, [m.product_id for m in val], [m.category for m in val],
                           head.transform(product_vecs), pids, pcats, k=10)  # fmt: skip

    cfg = TrainConfig(residual=True, hidden=(args.hidden,) * 3, lr=args.lr, margin=args.margin,
                      groups_per_batch=48, per_group=args.per_group, steps_per_epoch=args.steps,
                      max_epochs=args.epochs, patience=args.patience, seed=args.seed, threads=1)  # fmt: skip
    result = train_same(x, labels, backbone=backbone.name, config=cfg, validate=validate if val and not args.fixed_epochs else None,
                        show_progress=True,
                        trained_on={"groups": "ikea crop->product", "fit_rooms": len(fit_rooms),
                                    "eval_rooms_seed": args.seed, "pairs": len(fit),
                                    "augmented": len(aug_members)})  # fmt: skip
    head = result.head
    head_dir = head.save(out_dir / f"head-{args.backbone.replace(':', '_').replace('/', '_')}")
    val_before = validate(Embedder(backbone).head) if val else None
    val_after = validate(head) if val else float("nan")
    print(f"trained in {result.seconds:.0f} s; val crop recall@10 {val_before} -> {val_after:.3f}")

    ks = (1, 5, 10, 20)
    before = look_recall(
        products, Embedder(backbone), detector, taxonomy, settings, scenes, pairs, eval_rooms, ks
    )
    after = look_recall(
        products,
        Embedder(backbone, head),
        detector,
        taxonomy,
        settings,
        scenes,
        pairs,
        eval_rooms,
        ks,
    )
    print("\nlook-recall on evaluation rooms, BEFORE adaptation\n" + before.table())
    print("\nAFTER adaptation\n" + after.table())
    summary = {
        "args": vars(args), "rooms": {"fit": len(fit_rooms), "val": len(val_rooms), "eval": len(eval_rooms)},
        "mined_pairs": {"fit": len(fit), "val": len(val)}, "augmented": len(aug_members),
        "train_seconds": round(result.seconds, 1), "best_epoch": result.best_epoch,
        "val_crop_recall10": {"before": val_before, "after": val_after},
        "look_recall_before": before.as_dict(), "look_recall_after": after.as_dict(),
        "head": str(head_dir), "total_seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }  # fmt: skip
    (out_dir / "results.json").write_text(json.dumps(summary, indent=2, default=str))
    print(
        f"\npeak RSS {summary['peak_rss_mb']} MB, total {summary['total_seconds']} s -> {out_dir}/results.json"
    )


if __name__ == "__main__":
    main()
