"""`shopthelook classify IMAGE...`: the ImageNet top-k of photos (EfficientNet-Lite head)."""

from __future__ import annotations

import json

from shopthelook.commands import settings_from_args


def register(sub) -> None:
    p = sub.add_parser("classify", help="ImageNet labels of photos (EfficientNet-Lite classifier)")
    p.add_argument("images", nargs="+", help="photos")
    p.add_argument("--backbone", default="effnet-lite2", help="effnet-lite2 (default) or -lite0")
    p.add_argument("--top-k", type=int, default=5, help="labels per photo, 1-1000 (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_classify)


def cmd_classify(args) -> int:
    from embedder import create_classifier
    from shopthelook.core.errors import ConfigError

    if not 1 <= args.top_k <= 1000:
        raise ConfigError(f"--top-k {args.top_k}: give a number from 1 to 1000")
    classifier = create_classifier(args.backbone, settings_from_args(args))
    tops = classifier.classify(args.images, top_k=args.top_k)
    if args.json:
        rows = [
            {"image": image, "labels": [{"label": label, "probability": p} for label, p in top]}
            for image, top in zip(args.images, tops)
        ]
        print(json.dumps(rows, indent=2))
        return 0
    for image, top in zip(args.images, tops):
        print(image)
        for label, p in top:
            print(f"  {p:6.3f}  {label}")
    return 0
