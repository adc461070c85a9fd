"""Named backbones: ``create_backbone("yolo")``, ``create_backbone("clip:ViT-B-32//ckpt.pt")``.

Name grammar (the name a backbone reports round-trips through :func:`create_backbone`, which
is why catalog manifests can store it):

    name    := block ("+" block)*            several blocks are concatenated
    block   := backbone ("*" weight)?        weight > 0, default 1 (omitted in canonical names)
    backbone:= prefix (":" argument)?        e.g. yolo, hvf, random, clip:<model>/<weights>

A concatenation L2-normalises each block, multiplies it by its weight, concatenates and
normalises again, so ``yolo+hvf*0.5`` lets hvf contribute half of yolo's share to the cosine.
A new backbone registers a factory here with :func:`register_backbone` (the built-ins do so
in ``embedder.builtin_backbones``, imported with the package); ``embedder.factory`` builds them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from embedder.base import Backbone
from shopthelook.core.config import Settings
from shopthelook.core.errors import BackboneError

Factory = Callable[[str | None, Settings], Backbone]


@dataclass(frozen=True)
class BackboneEntry:
    prefix: str
    #: how the name is written, e.g. "clip:<model>/<checkpoint>"
    pattern: str
    summary: str
    factory: Factory
    #: True when the name takes ":<argument>"
    takes_argument: bool = False
    #: a name that builds this backbone without ../shared or the network (contract tests);
    #: None when it needs real weights (then tests use ``needs_shared_example``)
    example: str | None = None
    needs_shared_example: str | None = None
    #: the canonical spelling of an argument (e.g. an absolute checkpoint path)
    canonical_argument: Callable[[str], str] | None = None


_REGISTRY: dict[str, BackboneEntry] = {}


def register_backbone(entry: BackboneEntry) -> BackboneEntry:
    """Add (or replace) a named backbone (the built-ins are registered on import of the package)."""
    if "+" in entry.prefix or "*" in entry.prefix or ":" in entry.prefix:
        raise ValueError(f"backbone prefix {entry.prefix!r} may not contain '+', '*' or ':'")
    _REGISTRY[entry.prefix] = entry
    return entry


def registered_backbones() -> list[BackboneEntry]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def list_backbones() -> list[str]:
    """The names (patterns for those that take an argument) that create_backbone accepts."""
    return [e.pattern for e in registered_backbones()]


def describe_backbones() -> dict[str, str]:
    """pattern -> one-line summary, for ``shopthelook backbones``."""
    described = {e.pattern: e.summary for e in registered_backbones()}
    described["<a>+<b>*<w>"] = "concatenation: e.g. yolo+hvf*0.5 (each block normalised, weighted)"
    return described


def _known() -> str:
    return (
        ", ".join(list_backbones()) + " (or blocks joined by '+', weighted with '*w': yolo+hvf*0.5)"
    )


def parse_backbone_name(name: str) -> list[tuple[str, str | None, float]]:
    """[(prefix, argument or None, weight)] for each '+'-joined block of ``name``."""
    if not isinstance(name, str) or not name.strip():
        raise BackboneError(f"backbone name {name!r} is empty; known: {_known()}")
    blocks = []
    for raw in name.strip().split("+"):
        text, weight = raw.strip(), 1.0
        head, star, tail = text.rpartition("*")
        if star:
            try:
                weight = float(tail)
            except ValueError:
                raise BackboneError(
                    f"backbone {name!r}: block {raw!r} has weight {tail!r}, not a number"
                ) from None
            text = head.strip()
            if not (math.isfinite(weight) and weight > 0):
                raise BackboneError(f"backbone {name!r}: weight {tail} must be a positive number")
        prefix, colon, argument = text.partition(":")
        entry = _REGISTRY.get(prefix)
        if entry is None:
            raise BackboneError(f"unknown backbone {text!r} in {name!r}; known: {_known()}")
        if colon and not entry.takes_argument:
            raise BackboneError(f"backbone {prefix!r} takes no ':' argument (got {text!r})")
        if entry.takes_argument and not argument:
            raise BackboneError(f"backbone {text!r}: write it as {entry.pattern}")
        blocks.append((prefix, argument if colon else None, weight))
    return blocks


def canonical_backbone_name(name: str) -> str:
    """The name the backbone built from ``name`` will report (without building it)."""
    parts = []
    for prefix, argument, weight in parse_backbone_name(name):
        entry = _REGISTRY[prefix]
        if argument is not None and entry.canonical_argument:
            argument = entry.canonical_argument(argument)
        single = prefix if argument is None else f"{prefix}:{argument}"
        parts.append(block_name(single, weight))
    return "+".join(parts)


def block_name(name: str, weight: float) -> str:
    return name if weight == 1.0 else f"{name}*{weight!r}"


def backbone_entry(prefix: str) -> BackboneEntry:
    """The registered entry for ``prefix`` (a name's first part before ':')."""
    entry = _REGISTRY.get(prefix)
    if entry is None:
        raise BackboneError(f"unknown backbone {prefix!r}; known: {_known()}")
    return entry
