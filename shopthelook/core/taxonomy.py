"""The catalog taxonomy: detector label -> catalog categories, product row -> category.

The rules live in a data file (``data/taxonomy.toml``), not in code, so that a catalog with
other product fields or a detector with other labels needs only a new file.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from shopthelook.core.errors import ConfigError

OTHER = "other"


@dataclass(frozen=True)
class CategoryRule:
    name: str
    detector_labels: tuple[str, ...] = ()
    patterns: dict[str, tuple[re.Pattern[str], ...]] = field(default_factory=dict)
    #: labels whose objects also search this category, after their own category
    #: (a detected "chair" may be an armchair; a "bed" shows bedding)
    also_detector_labels: tuple[str, ...] = ()
    #: ImageNet-1k classes that are evidence for this category (the catalog-taught detector)
    imagenet_labels: tuple[str, ...] = ()

    def matches(self, row: Mapping[str, Any]) -> bool:
        for column, regexes in self.patterns.items():
            value = row.get(column)
            if value is None or (isinstance(value, float) and value != value):
                continue
            text = str(value)
            if any(r.search(text) for r in regexes):
                return True
        return False


class Taxonomy:
    def __init__(self, rules: list[CategoryRule], source: str = "<memory>") -> None:
        self.rules = rules
        self.source = source
        self._by_name = {r.name: r for r in rules}
        self._label_to_categories: dict[str, list[str]] = {}
        for rule in rules:
            for label in rule.detector_labels:
                self._label_to_categories.setdefault(label, []).append(rule.name)
        # A label's own category is the first rule that lists it *first*, else the first rule.
        for label, cats in self._label_to_categories.items():
            own = [c for c in cats if self._by_name[c].detector_labels[0] == label]
            if own:
                cats.remove(own[0])
                cats.insert(0, own[0])
        # Secondary categories come after every primary one, in file order.
        for rule in rules:
            for label in rule.also_detector_labels:
                cats = self._label_to_categories.setdefault(label, [])
                if rule.name not in cats:
                    cats.append(rule.name)

    @classmethod
    def load(cls, path: str | Path) -> Taxonomy:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"taxonomy file {p}: no such file")
        if p.is_dir():
            raise ConfigError(f"taxonomy file {p}: is a folder, not a TOML file")
        try:
            data = tomllib.loads(p.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"taxonomy file {p}: not valid TOML ({exc})") from None
        categories = data.get("categories", {})
        if not isinstance(categories, dict):
            raise ConfigError(f"taxonomy file {p}: [categories] must be a table of tables")
        rules = []
        for name, spec in categories.items():
            if not isinstance(spec, dict):
                raise ConfigError(
                    f"taxonomy file {p}: category {name} must be a table "
                    "([categories.NAME] with detector_labels / match.<column>)"
                )
            unknown = sorted(set(spec) - _RULE_KEYS)
            if unknown:
                raise ConfigError(
                    f"taxonomy file {p}: category {name}: unknown keys {unknown}; "
                    f"known: {sorted(_RULE_KEYS)}"
                )
            patterns: dict[str, tuple[re.Pattern[str], ...]] = {}
            match = spec.get("match", {})
            if not isinstance(match, dict):
                raise ConfigError(
                    f"taxonomy file {p}: category {name}: match must be a table "
                    "(match.<column> = [patterns])"
                )
            for column, regexes in match.items():
                if isinstance(regexes, str):
                    regexes = [regexes]
                try:
                    patterns[column] = tuple(re.compile(r, re.IGNORECASE) for r in regexes)
                except (re.error, TypeError) as exc:
                    raise ConfigError(
                        f"taxonomy file {p}: category {name}: bad pattern in match.{column} ({exc})"
                    ) from None
            rules.append(
                CategoryRule(
                    name,
                    _labels(p, name, spec, "detector_labels"),
                    patterns,
                    _labels(p, name, spec, "also_detector_labels"),
                    _labels(p, name, spec, "imagenet_labels"),
                )
            )
        if not rules:
            raise ConfigError(f"taxonomy file {p}: no [categories.*] tables")
        return cls(rules, source=str(p))

    @property
    def categories(self) -> list[str]:
        return [r.name for r in self.rules] + [OTHER]

    def search_categories(self, label: str) -> tuple[str, ...]:
        """Catalog categories searched for a detector label, its own category first."""
        return tuple(self._label_to_categories.get(label, ()))

    def category_for_label(self, label: str) -> str | None:
        cats = self._label_to_categories.get(label)
        return cats[0] if cats else None

    def is_detectable(self, category: str) -> bool:
        """Whether some detector label searches ``category`` (as its own or a secondary one)."""
        rule = self._by_name.get(category)
        return bool(rule and (rule.detector_labels or rule.also_detector_labels))

    @property
    def detectable_categories(self) -> list[str]:
        return [r.name for r in self.rules if r.detector_labels or r.also_detector_labels]

    def imagenet_map(self) -> dict[str, str]:
        """ImageNet class name -> the catalog category it is evidence for (first rule wins)."""
        mapping: dict[str, str] = {}
        for rule in self.rules:
            for label in rule.imagenet_labels:
                mapping.setdefault(label, rule.name)
        return mapping

    @property
    def detector_labels(self) -> list[str]:
        return list(self._label_to_categories)

    def categorize(self, row: Mapping[str, Any]) -> str:
        """The category of one product row (a mapping of column -> value)."""
        given = row.get("category")
        if isinstance(given, str) and given:
            if given in self._by_name or given == OTHER:
                return given
            for rule in self.rules:
                if rule.matches({k: given for k in rule.patterns}):
                    return rule.name
            return given  # a category the taxonomy does not know is kept as the user named it
        for rule in self.rules:
            if rule.matches(row):
                return rule.name
        return OTHER

    def categorize_table(self, table: pd.DataFrame) -> pd.Series:
        columns = [c for c in table.columns if c == "category" or self._is_rule_column(c)]
        records = table[columns].to_dict("records") if columns else [{}] * len(table)
        return pd.Series([self.categorize(r) for r in records], index=table.index, dtype=object)

    def _is_rule_column(self, column: str) -> bool:
        return any(column in r.patterns for r in self.rules)


_RULE_KEYS = {"detector_labels", "also_detector_labels", "imagenet_labels", "match"}


def _labels(path: Path, name: str, spec: dict[str, Any], key: str) -> tuple[str, ...]:
    value = spec.get(key, ())
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"taxonomy file {path}: category {name}: {key} must be a list of labels")
    return tuple(value)


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    from shopthelook.core.config import PACKAGE_DATA

    return Taxonomy.load(path or PACKAGE_DATA / "taxonomy.toml")
