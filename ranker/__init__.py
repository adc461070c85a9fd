"""The re-ranking stage: engagement events, user style profiles, features, LightGBM ranker.

``load_ranker(folder, catalog=..., events=...)`` is the serving entry point; it falls back
to the visual order (with ``fallback_reason``) when the model cannot be used.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # lazy: importing the package (for ranker.base) must not load LightGBM
    if name in ("load_ranker", "LightGBMRanker"):
        from ranker import lgbm

        return getattr(lgbm, name)
    raise AttributeError(f"module 'ranker' has no attribute {name!r}")
