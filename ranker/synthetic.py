"""A small synthetic shop with planted preferences, for tests and benchmarks.

Products have a category and a style (both visible in their embeddings) and a brightness
(an attractiveness statistic). Each user likes one style; when buying, a user picks products
of that style, brighter ones more often. A ranker that combines the user's profile with
brightness should beat every single signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ranker.attractiveness import ATTRACTIVENESS
from ranker.events import COLUMNS
from ranker.profile import ProductSpace


@dataclass
class SyntheticShop:
    space: ProductSpace
    products: pd.DataFrame
    attractiveness: pd.DataFrame
    events: pd.DataFrame
    user_style: dict[str, int]


def make_shop(
    n_users: int = 120,
    n_categories: int = 3,
    per_category: int = 80,
    n_styles: int = 6,
    dim: int = 24,
    days: int = 120,
    purchases_per_user: int = 14,
    seed: int = 0,
) -> SyntheticShop:
    rng = np.random.default_rng(seed)
    cat_dirs = rng.normal(size=(n_categories, dim))
    style_dirs = rng.normal(size=(n_styles, dim))
    ids, cats, styles, vecs = [], [], [], []
    for c in range(n_categories):
        for j in range(per_category):
            s = int(rng.integers(n_styles))
            ids.append(f"p{c}-{j:03d}")
            cats.append(f"cat{c}")
            styles.append(s)
            vecs.append(1.0 * cat_dirs[c] + 0.8 * style_dirs[s] + 1.2 * rng.normal(size=dim))
    vecs = np.asarray(vecs, np.float32)
    space = ProductSpace(ids, vecs, cats)
    styles = np.asarray(styles)
    brightness = rng.uniform(0, 1, len(ids)).astype(np.float32)
    attr = pd.DataFrame(
        rng.uniform(0, 1, (len(ids), len(ATTRACTIVENESS))).astype(np.float32),
        index=ids,
        columns=list(ATTRACTIVENESS),
    )
    attr["brightness"] = brightness
    products = pd.DataFrame(
        {"product_id": ids, "category": cats, "name": [f"item {i}" for i in ids], "style": styles}
    )
    start = pd.Timestamp("2024-01-01", tz="UTC")
    rows, user_style = [], {}
    for u in range(n_users):
        user = f"u{u:03d}"
        s = int(rng.integers(n_styles))
        user_style[user] = s
        times = np.sort(rng.uniform(0, days, purchases_per_user))
        for t in times:
            c = int(rng.integers(n_categories))
            pool = np.flatnonzero((np.asarray(cats) == f"cat{c}") & (styles == s))
            if len(pool) == 0:
                continue
            weight = np.exp(4.0 * brightness[pool])
            pid = ids[int(rng.choice(pool, p=weight / weight.sum()))]
            ts = start + pd.Timedelta(days=float(t))
            rows.append(("purchase", user, pid, ts, None, f"cat{c}", None, 10.0 + s, None))
            if rng.random() < 0.5:  # a click some time before buying
                rows.append(
                    ("click", user, pid, ts - pd.Timedelta(hours=1), None, f"cat{c}", 1, None, None)
                )
    events = pd.DataFrame(
        rows,
        columns=list(COLUMNS),
    )
    events = events.sort_values("ts", kind="stable").reset_index(drop=True)
    return SyntheticShop(space, products, attr, events, user_style)
