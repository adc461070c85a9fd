"""CLI command groups; see shopthelook.cli."""

from __future__ import annotations

import argparse
import sys

from shopthelook.core.config import Settings, load_settings

#: the most products per object a command returns (more is capped, with a note)
MAX_TOP_K = 100


def settings_from_args(args, **overrides) -> Settings:
    """Settings from --config, the environment and the command's own flags."""
    return load_settings(getattr(args, "config", None), **overrides)


def announce(args) -> bool:
    """Whether to print what is going on (cluster addresses, ...): unless --quiet."""
    return not getattr(args, "quiet", False)


def show_progress(args) -> bool:
    """Progress bars only on a terminal: in a log file every update would be a new line."""
    return announce(args) and sys.stderr.isatty()


def at_least_one(text: str, what: str) -> int:
    """A command-line whole number of 1 or more; ``what`` names one unit in the error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: give at least 1 {what}")
    return value


def top_k_arg(text: str) -> int:
    """``--top-k``: a positive integer, capped at MAX_TOP_K (saying so)."""
    value = at_least_one(text, "product per object")
    if value > MAX_TOP_K:
        print(f"note: --top-k {value} is more than {MAX_TOP_K}; using {MAX_TOP_K}", file=sys.stderr)
        return MAX_TOP_K
    return value
