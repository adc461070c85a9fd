"""Embedder stage: named backbones (images -> unit vectors) followed by an optional head.

``create_backbone("yolo")``, ``create_embedder(settings)``; ``list_backbones()`` names them.
A new backbone subclasses :class:`Backbone` (or ``embedder.batching.BatchedBackbone``) and
registers a :class:`BackboneEntry` with ``register_backbone``.
"""

from embedder.base import Backbone, l2_normalize
from embedder.factory import create_backbone, create_classifier, create_embedder, load_head
from embedder.head import Embedder, Head, IdentityHead
from embedder.registry import (
    BackboneEntry,
    canonical_backbone_name,
    describe_backbones,
    list_backbones,
    register_backbone,
    registered_backbones,
)

__all__ = [
    "Backbone",
    "BackboneEntry",
    "Embedder",
    "Head",
    "IdentityHead",
    "canonical_backbone_name",
    "create_backbone",
    "create_classifier",
    "create_embedder",
    "describe_backbones",
    "l2_normalize",
    "list_backbones",
    "load_head",
    "register_backbone",
    "registered_backbones",
]
