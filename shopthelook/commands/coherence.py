"""`shopthelook coherence train`: the style-coherence model behind `look --whole-look`."""

from __future__ import annotations

from shopthelook.commands import settings_from_args, show_progress

#: the whole-look weight measured best on validation rooms (benchmarks/eval_whole_look.py)
DEFAULT_WEIGHT = 0.05


def register(sub) -> None:
    p = sub.add_parser("coherence", help="style coherence between products (for --whole-look)")
    csub = p.add_subparsers(dest="coherence_command", metavar="ACTION")
    t = csub.add_parser(
        "train", help="learn which products go together from real co-occurrence groups"
    )
    t.add_argument("--catalog", required=True, help="catalog folder (its vectors are the input)")
    t.add_argument(
        "--groups",
        default="ikea-rooms",
        help="co-occurrence groups: ikea-rooms, hm-customers, clothing or a CSV with "
        "image, group, item_id (item_id = catalog product id); default ikea-rooms",
    )
    t.add_argument("--out", required=True, help="folder to write the model to")
    t.add_argument("--val-fraction", type=float, default=0.2, help="groups for early stopping")
    t.add_argument(
        "--test-fraction",
        type=float,
        default=0.3,
        help="groups held out and recorded as never seen, for evaluation (default 0.3)",
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--epochs", type=int, default=30, help="at most this many epochs")
    t.add_argument(
        "--weight",
        type=float,
        default=DEFAULT_WEIGHT,
        help=f"how much coherence counts against visual match (default {DEFAULT_WEIGHT})",
    )
    t.add_argument(
        "--prior",
        type=float,
        default=0.0,
        help="weight of the popularity prior, log(1 + training rooms with the product), "
        "in the whole look (default 0: measured no better than noise)",
    )
    t.add_argument(
        "--no-cooccurrence",
        action="store_true",
        help="do not count products and series found together in the training groups",
    )
    t.set_defaults(func=cmd_train)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def cmd_train(args) -> int:
    from catalog import Catalog
    from embedder.train_same import TrainConfig
    from ranker.coherence import train_coherence
    from shopthelook.core.errors import ConfigError
    from shopthelook.core.groups import load_groups, split_groups

    for flag, value in (("--weight", args.weight), ("--prior", args.prior)):
        if not value >= 0:
            raise ConfigError(f"{flag} {value}: give a number >= 0")
    if args.epochs < 1:
        raise ConfigError(f"--epochs {args.epochs}: give at least 1")
    settings = settings_from_args(args)
    catalog = Catalog.load(args.catalog)
    groups = load_groups(args.groups, data_root=settings.data_root)
    ids = groups[groups["item_id"].astype(str).map(catalog.has_product)]["group"]
    train, val, test = split_groups(
        ids, val_fraction=args.val_fraction, test_fraction=args.test_fraction, seed=args.seed
    )
    model = train_coherence(
        catalog,
        groups,
        train_groups=train,
        val_groups=val,
        test_groups=test,
        source=str(args.groups),
        config=TrainConfig(dim_out=128, max_epochs=args.epochs, seed=args.seed),
        show_progress=show_progress(args),
        cooccurrence=not args.no_cooccurrence,
    )
    model.metrics["whole_look_weight"] = args.weight
    model.metrics["whole_look_prior"] = args.prior
    model.trained_on["split_seed"] = args.seed
    out = model.save(args.out)
    val_m, base = model.metrics.get("val", {}), model.metrics.get("val_backbone", {})
    print(
        f"coherence model {model.model_id}: {len(train)} training, {len(val)} validation, "
        f"{len(test)} held-out groups of {args.groups}"
    )
    if val_m:
        print(
            f"validation pair AUC {val_m['pair_auc']:.3f} (catalog vectors alone "
            f"{base['pair_auc']:.3f}), HitRate@10 {val_m['hit_rate']:.3f} "
            f"({base['hit_rate']:.3f})"
        )
    print(
        f"saved to {out}; use it with: shopthelook look IMAGE --catalog {args.catalog} "
        f"--whole-look --coherence {out}"
    )
    return 0
