"""look-recall@K: does a scene's ground-truth product appear in the top-K of one of its objects?

A (scene, product) pair is a hit at K when the product is in the top-K list of at least one
of the scene's searched objects (at most ``max_objects``, highest detection score first).
Reported over all pairs, over pairs whose category the detector can see, and per category,
with detector coverage (the scene has an object that searches the product's category) and
the exact expectation of the same protocol with random vectors (random order within the
searched categories) as the baseline.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm import tqdm

from shopthelook.core.errors import DatasetError, ShopTheLookError

log = logging.getLogger(__name__)
DEFAULT_KS = (1, 5, 10, 20)


@dataclass
class RecallGroup:
    pairs: int = 0
    covered: int = 0
    hits: dict[int, int] = field(default_factory=dict)
    random_hits: dict[int, float] = field(default_factory=dict)

    def add(self, covered: bool, hits: dict[int, bool], random_hits: dict[int, float]) -> None:
        self.pairs += 1
        self.covered += covered
        for k, h in hits.items():
            self.hits[k] = self.hits.get(k, 0) + int(h)
        for k, p in random_hits.items():
            self.random_hits[k] = self.random_hits.get(k, 0.0) + p

    def as_dict(self) -> dict:
        n = max(1, self.pairs)
        return {
            "pairs": self.pairs,
            "coverage": round(self.covered / n, 4),
            "recall": {str(k): round(v / n, 4) for k, v in sorted(self.hits.items())},
            "random": {str(k): round(v / n, 4) for k, v in sorted(self.random_hits.items())},
        }


@dataclass
class LookEvaluation:
    ks: tuple[int, ...]
    overall: RecallGroup
    detectable: RecallGroup
    #: pairs whose scene has an object searching the pair's category (detector hit the kind)
    covered: RecallGroup
    by_category: dict[str, RecallGroup]
    scenes: int
    scenes_failed: int
    pairs_not_in_catalog: int
    objects_per_scene: float
    timings: dict[str, float]
    #: share of objects whose category is that of some ground-truth product of their scene
    category_precision: float = 0.0
    #: category -> [objects, objects whose category the scene's products have]
    objects_by_category: dict[str, list[int]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "ks": list(self.ks),
            "scenes": self.scenes,
            "scenes_failed": self.scenes_failed,
            "pairs_not_in_catalog": self.pairs_not_in_catalog,
            "objects_per_scene": round(self.objects_per_scene, 2),
            "category_precision": round(self.category_precision, 4),
            "objects_by_category": {
                c: {"objects": n, "precision": round(r / max(1, n), 4)}
                for c, (n, r) in sorted(self.objects_by_category.items())
            },
            "overall": self.overall.as_dict(),
            "detectable": self.detectable.as_dict(),
            "covered": self.covered.as_dict(),
            "by_category": {c: g.as_dict() for c, g in sorted(self.by_category.items())},
            "median_seconds_per_stage": {k: round(v, 4) for k, v in self.timings.items()},
        }

    def table(self) -> str:
        head = f"{'group':<16}{'pairs':>6}{'cover':>7}" + "".join(
            f"{'R@' + str(k):>7}{'rnd':>6}" for k in self.ks
        )
        rows = [head, "-" * len(head)]

        def row(name: str, g: RecallGroup) -> str:
            d = g.as_dict()
            cells = "".join(
                f"{d['recall'].get(str(k), 0):>7.3f}{d['random'].get(str(k), 0):>6.3f}"
                for k in self.ks
            )
            return f"{name:<16}{g.pairs:>6}{d['coverage']:>7.2f}{cells}"

        rows.append(row("all pairs", self.overall))
        rows.append(row("detectable", self.detectable))
        rows.append(row("covered", self.covered))
        rows.append("-" * len(head))
        for cat, g in sorted(self.by_category.items(), key=lambda kv: -kv[1].pairs):
            n, right = self.objects_by_category.get(cat, (0, 0))
            precision = f"  objects {n:>4} precision {right / n:.2f}" if n else ""
            rows.append(row(cat, g) + precision)
        return "\n".join(rows)


def evaluate_looks(
    pipeline,
    scenes: pd.DataFrame,
    pairs: pd.DataFrame,
    *,
    ks=DEFAULT_KS,
    show_progress: bool = False,
    scene_ids: set[str] | None = None,
) -> LookEvaluation:
    ks = tuple(sorted(ks))
    catalog, taxonomy = pipeline.catalog, pipeline.taxonomy
    category_of = dict(zip(catalog.products["product_id"], catalog.products["category"]))
    category_size = catalog.products.groupby("category").size().to_dict()
    in_catalog = pairs["product_id"].isin(category_of.keys())
    pairs_missing = int((~in_catalog).sum())
    pairs = pairs[in_catalog]
    if scene_ids is not None:
        pairs = pairs[pairs["scene_id"].isin(scene_ids)]
    image_of = dict(zip(scenes["scene_id"].astype(str), scenes["image"]))
    wanted = [s for s in pairs["scene_id"].unique() if s in image_of]
    if not wanted:
        raise DatasetError("no scene of the pairs table is in the scenes table: check the ids")
    products_of = pairs.groupby("scene_id")["product_id"].apply(list).to_dict()

    overall, detectable, covered_pairs = RecallGroup(), RecallGroup(), RecallGroup()
    by_category: dict[str, RecallGroup] = defaultdict(RecallGroup)
    stage_times: dict[str, list[float]] = defaultdict(list)
    failed = objects = right = 0
    objects_by_category: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for scene_id in tqdm(wanted, desc="evaluating scenes", unit="scene", disable=not show_progress):
        try:
            result = pipeline.shop_the_look(image_of[scene_id], top_k=max(ks), scene_id=scene_id)
        except ShopTheLookError as exc:
            log.warning("scene %s failed: %s", scene_id, exc)
            failed += 1
            continue
        for stage, seconds in result.timings.items():
            stage_times[stage].append(seconds)
        searched = [o for o in result.objects if o.detection.source != "scene"]
        objects += len(searched)
        truth = {category_of[pid] for pid in products_of[scene_id]}
        for o in searched:
            name = o.detection.category or o.detection.label
            objects_by_category[name][0] += 1
            objects_by_category[name][1] += name in truth
            right += name in truth
        lists = [
            ([p.product_id for p in o.products], _searched_categories(o, catalog)) for o in searched
        ]
        for pid in products_of[scene_id]:
            cat = category_of[pid]
            reach = [(ranked, cats) for ranked, cats in lists if cat in cats]
            hits = {k: any(pid in ranked[:k] for ranked, _ in reach) for k in ks}
            random_hits = {k: _random_hit_probability(reach, category_size, k) for k in ks}
            covered = bool(reach)
            overall.add(covered, hits, random_hits)
            by_category[cat].add(covered, hits, random_hits)
            if taxonomy.is_detectable(cat):
                detectable.add(covered, hits, random_hits)
            if covered:
                covered_pairs.add(covered, hits, random_hits)
    done = len(wanted) - failed
    return LookEvaluation(
        ks=ks,
        overall=overall,
        detectable=detectable,
        covered=covered_pairs,
        by_category=dict(by_category),
        scenes=len(wanted),
        scenes_failed=failed,
        pairs_not_in_catalog=pairs_missing,
        objects_per_scene=objects / max(1, done),
        timings={k: float(np.median(v)) for k, v in stage_times.items()},
        category_precision=right / max(1, objects),
        objects_by_category=dict(objects_by_category),
    )


def _searched_categories(obj, catalog) -> set[str]:
    d = obj.detection
    cats = set(d.search_categories) or ({d.category} if d.category else set())
    return cats or set(catalog.categories())


def _random_hit_probability(reach, category_size: dict[str, int], k: int) -> float:
    """Chance that random scores put the product in the top-k of at least one object."""
    miss = 1.0
    for _, cats in reach:
        n = sum(category_size.get(c, 0) for c in cats)
        if n:
            miss *= 1.0 - min(k, n) / n
    return 1.0 - miss
