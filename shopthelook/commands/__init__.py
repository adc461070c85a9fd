"""CLI command groups; see shopthelook.cli."""

from __future__ import annotations

from shopthelook.core.config import Settings, load_settings


def settings_from_args(args, **overrides) -> Settings:
    """Settings from --config, the environment and the command's own flags."""
    return load_settings(getattr(args, "config", None), **overrides)


def show_progress(args) -> bool:
    return not getattr(args, "quiet", False)
