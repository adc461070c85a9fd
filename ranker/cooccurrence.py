"""What was found together: product and series co-occurrence counted over training groups.

The SAME head learns "goes together" from the products' pictures; these counts remember it
directly. Over the training groups (the products of one IKEA room, one customer's articles)
they count, for every product and every pair of products, the groups that contain them, and
the same for each product's *series* (IKEA's collection, the name's first word). A pair seen
together in another room is strong evidence; so is a product seen in many rooms (a prior).
The series map covers every catalog product, counted or not: it must not tell one kind from
the other.

Counts answer for one group with that group's own contribution removed (``exclude``), so a
model can be fitted and tuned on its own training groups without reading their answers.
Saved as ``cooccurrence.json`` next to the coherence model's manifest.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from shopthelook.core.errors import ConfigError

log = logging.getLogger(__name__)

FILE = "cooccurrence.json"
#: the pairwise features these counts give, in the coherence model's ``coef`` names
FEATURES = ("cooc:product", "cooc:series")


def _pairs(items: Sequence[str]) -> Iterable[tuple[str, str]]:
    for i, a in enumerate(items):
        for b in items[i + 1 :]:
            yield (a, b)


@dataclass
class Cooccurrence:
    """Group counts of products, product pairs, series and series pairs."""

    #: group -> its distinct products (sorted)
    groups: dict[str, list[str]] = field(default_factory=dict)
    #: product -> series ("" when unknown)
    series: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.items: Counter = Counter()
        self.pairs: Counter = Counter()
        self.series_items: Counter = Counter()
        self.series_pairs: Counter = Counter()
        for members in self.groups.values():
            self._count(members, +1)

    @classmethod
    def from_table(cls, table: pd.DataFrame, series: dict[str, str]) -> Cooccurrence:
        """From a group table (``group``, ``item_id``) and each product's series."""
        groups = {
            str(g): sorted(set(m.astype(str)))
            for g, m in table.groupby(table["group"].astype(str))["item_id"]
        }
        return cls(groups=groups, series={str(k): str(v) for k, v in series.items()})

    def _series_of(self, members: Sequence[str]) -> list[str]:
        return sorted({self.series.get(p, "") for p in members} - {""})

    def _count(self, members: Sequence[str], sign: int) -> None:
        self.items.update({p: sign for p in members})
        self.pairs.update({pair: sign for pair in _pairs(members)})
        ser = self._series_of(members)
        self.series_items.update({s: sign for s in ser})
        self.series_pairs.update({pair: sign for pair in _pairs(ser)})

    @property
    def n_groups(self) -> int:
        return len(self.groups)

    def prior(self, ids: Sequence[str], exclude: str | None = None) -> np.ndarray:
        """log(1 + groups that contain each product), without group ``exclude``."""
        own = set(self.groups.get(exclude, ())) if exclude is not None else set()
        return np.log1p([self.items.get(p, 0) - (p in own) for p in ids]).astype(np.float64)

    def pair(self, a: str, b: str, exclude: str | None = None) -> tuple[float, float]:
        """(``cooc:product``, ``cooc:series``) of two products: log(1 + groups with both) and
        the smoothed PMI of their two series (0 for one series or an unknown one: "same
        series" is a feature of its own), without group ``exclude``."""
        own = self.groups.get(exclude, ()) if exclude is not None else ()
        a, b = sorted((a, b))
        c = self.pairs.get((a, b), 0)
        if c and own:
            c -= a in own and b in own
        sa, sb = sorted((self.series.get(a, ""), self.series.get(b, "")))
        if not (sa and sb and sa != sb):
            return float(np.log1p(c)), 0.0
        own_series = self._series_of(own) if own else ()
        groups = self.n_groups - (1 if own else 0)
        cs = self.series_pairs.get((sa, sb), 0) - (sa in own_series and sb in own_series)
        ca = self.series_items.get(sa, 0) - (sa in own_series)
        cb = self.series_items.get(sb, 0) - (sb in own_series)
        if ca <= 0 or cb <= 0:  # a series never seen is no evidence either way
            return float(np.log1p(c)), 0.0
        pmi = np.log((cs + 1.0) * (groups + 1.0) / ((ca + 1.0) * (cb + 1.0)))
        return float(np.log1p(c)), float(pmi)

    def pair_features(
        self, ids: Sequence[str], exclude: str | None = None
    ) -> dict[str, np.ndarray]:
        """:meth:`pair` for every pair of ``ids``, as symmetric matrices by feature name."""
        return self.cross_features(ids, ids, exclude)

    def cross_features(
        self, rows: Sequence[str], cols: Sequence[str], exclude: str | None = None
    ) -> dict[str, np.ndarray]:
        """:meth:`pair` of every row product with every column product (0 on the same
        product), as matrices by feature name."""
        out = {name: np.zeros((len(rows), len(cols))) for name in FEATURES}
        known = set(self.items)
        for i, a in enumerate(rows):
            if a not in known and not self.series.get(a):
                continue
            for j, b in enumerate(cols):
                if a != b:
                    for name, v in zip(FEATURES, self.pair(a, b, exclude)):
                        out[name][i, j] = v
        return out

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / FILE
        # every product's series, counted or not: a series known only for counted products
        # would tell a product of a counted group from one never seen
        body = {"groups": self.groups, "series": {p: v for p, v in self.series.items() if v}}
        path.write_text(json.dumps(body))
        return path

    @classmethod
    def load(cls, folder: str | Path) -> Cooccurrence | None:
        """The counts saved in a coherence model folder (None when it has none)."""
        path = Path(folder) / FILE
        if not path.exists():
            return None
        try:
            body = json.loads(path.read_text())
            groups = {str(g): [str(p) for p in m] for g, m in body["groups"].items()}
            series = {str(k): str(v) for k, v in body["series"].items()}
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"{path} is corrupt ({exc!r}); train the coherence model again"
            ) from None
        return cls(groups=groups, series=series)
