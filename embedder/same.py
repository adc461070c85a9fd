"""SAME head (seed 001, section 2.1): an MLP with three hidden layers over backbone embeddings.

The head maps a backbone's L2-normalised embeddings into a space where the dot product says
"these two images come from the same group" (account, room, customer, style). Inference runs
in numpy so the catalog and the web server need no torch graph; training lives in
``embedder.train_same`` and builds the identical network in torch (:meth:`SameHead.to_torch`).

A head is a folder: ``head.safetensors`` (the weights) and ``head.json`` (the manifest:
kind, backbone, dims, hidden sizes, head id, what it was trained on and its metrics).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedder.base import l2_normalize
from embedder.head import Head, register_head
from shopthelook.core.errors import HeadError

logger = logging.getLogger(__name__)

MANIFEST = "head.json"
WEIGHTS = "head.safetensors"
FORMAT_VERSION = 1


@dataclass
class SameConfig:
    backbone: str
    dim_in: int
    dim_out: int = 128
    hidden: tuple[int, ...] = (512, 512, 512)
    #: add the input back onto the output (needs dim_out == dim_in): the head then starts
    #: near the backbone's own space and only learns a correction, which keeps small
    #: training sets (a few hundred crop/product pairs) from erasing what the backbone knows
    residual: bool = False
    trained_on: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        if len(self.hidden) != 3:
            raise HeadError(f"a SAME head has three hidden layers, got hidden={list(self.hidden)}")
        if self.dim_in < 1 or self.dim_out < 1 or min(self.hidden) < 1:
            raise HeadError(
                f"SAME head dimensions must be positive (dim_in={self.dim_in}, "
                f"hidden={list(self.hidden)}, dim_out={self.dim_out})"
            )
        if self.residual and self.dim_out != self.dim_in:
            raise HeadError(
                f"a residual SAME head needs dim_out == dim_in ({self.dim_out} != {self.dim_in})"
            )

    def layer_shapes(self) -> list[tuple[int, int]]:
        """(out, in) of each Linear layer, the torch weight layout."""
        sizes = [self.dim_in, *self.hidden, self.dim_out]
        return [(sizes[i + 1], sizes[i]) for i in range(len(sizes) - 1)]


def _param_names(n_layers: int) -> list[str]:
    names = []
    for i in range(n_layers):
        names += [f"layers.{i}.weight", f"layers.{i}.bias"]
    return names


@register_head("same")
class SameHead(Head):
    """Linear-ReLU x3 then Linear, L2-normalised output (optionally plus the input)."""

    def __init__(self, config: SameConfig, params: dict[str, np.ndarray] | None = None) -> None:
        self.config = config
        self.backbone = config.backbone
        self.dim_in = config.dim_in
        self.dim_out = config.dim_out
        shapes = config.layer_shapes()
        if params is None:
            params = _init_params(shapes, seed=0)
        self._check_params(params, shapes, where="<memory>")
        self.params = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()}
        self.head_id = "same:" + self._fingerprint()

    # -- inference -------------------------------------------------------------------------

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim_in:
            raise HeadError(
                f"head {self.head_id} expects [n, {self.dim_in}] embeddings, got {list(x.shape)}"
            )
        h = x
        n_layers = len(self.config.layer_shapes())
        for i in range(n_layers):
            h = h @ self.params[f"layers.{i}.weight"].T + self.params[f"layers.{i}.bias"]
            if i < n_layers - 1:
                np.maximum(h, 0.0, out=h)
        if self.config.residual:
            h = h + x
        return l2_normalize(h)

    # -- torch bridge (training) -----------------------------------------------------------

    def to_torch(self):
        """The same network as a ``torch.nn.Module`` (weights copied)."""
        import torch

        module = build_torch_mlp(self.config)
        with torch.no_grad():
            for name, p in module.named_parameters():
                p.copy_(torch.from_numpy(self.params[name]))
        return module

    @classmethod
    def from_torch(cls, config: SameConfig, module) -> SameHead:
        params = {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}
        return cls(config, params)

    # -- persistence -----------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        from safetensors.numpy import save_file

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        save_file(self.params, str(out / WEIGHTS))
        manifest = {
            "kind": "same",
            "format_version": FORMAT_VERSION,
            "head_id": self.head_id,
            "backbone": self.config.backbone,
            "dim_in": self.config.dim_in,
            "dim_out": self.config.dim_out,
            "hidden": list(self.config.hidden),
            "residual": self.config.residual,
            "trained_on": self.config.trained_on,
            "metrics": self.config.metrics,
        }
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        return out

    @classmethod
    def load(cls, folder: str | Path) -> SameHead:
        folder = Path(folder)
        manifest_path = folder / MANIFEST
        if not manifest_path.exists():
            raise HeadError(
                f"head folder {folder}: no {MANIFEST} (train one with 'shopthelook same train')"
            )
        try:
            meta = json.loads(manifest_path.read_text())
            config = SameConfig(
                backbone=str(meta["backbone"]),
                dim_in=int(meta["dim_in"]),
                dim_out=int(meta["dim_out"]),
                hidden=tuple(meta["hidden"]),
                residual=bool(meta.get("residual", False)),
                trained_on=dict(meta.get("trained_on") or {}),
                metrics=dict(meta.get("metrics") or {}),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise HeadError(f"head folder {folder}: {MANIFEST} is corrupt ({exc!r})") from None
        if meta.get("kind") != "same":
            raise HeadError(f"head folder {folder}: kind is {meta.get('kind')!r}, not 'same'")
        weights = folder / WEIGHTS
        if not weights.exists():
            raise HeadError(f"head folder {folder}: {WEIGHTS} is missing")
        try:
            from safetensors.numpy import load_file

            params = load_file(str(weights))
        except Exception as exc:  # safetensors raises its own and OS errors on bad bytes
            raise HeadError(
                f"head folder {folder}: {WEIGHTS} cannot be read ({type(exc).__name__}: {exc}); "
                "retrain the head"
            ) from None
        cls._check_params(params, config.layer_shapes(), where=str(weights))
        head = cls(config, params)
        recorded = meta.get("head_id")
        if recorded and recorded != head.head_id:
            raise HeadError(
                f"head folder {folder}: weights do not match the manifest (head_id {recorded} "
                f"recorded, {head.head_id} computed); the files were changed or mixed up"
            )
        return head

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _check_params(params: dict[str, np.ndarray], shapes: Sequence[tuple[int, int]], where: str):
        expected = {}
        for i, (out_dim, in_dim) in enumerate(shapes):
            expected[f"layers.{i}.weight"] = (out_dim, in_dim)
            expected[f"layers.{i}.bias"] = (out_dim,)
        missing = sorted(set(expected) - set(params))
        extra = sorted(set(params) - set(expected))
        if missing or extra:
            raise HeadError(f"head weights {where}: missing {missing}, unexpected {extra}")
        for name, shape in expected.items():
            got = tuple(params[name].shape)
            if got != shape:
                raise HeadError(f"head weights {where}: {name} has shape {got}, expected {shape}")
            if not np.all(np.isfinite(params[name])):
                raise HeadError(f"head weights {where}: {name} contains NaN or infinite values")

    def _fingerprint(self) -> str:
        digest = hashlib.sha256()
        digest.update(self.config.backbone.encode())
        digest.update(json.dumps([self.dim_in, list(self.config.hidden), self.dim_out]).encode())
        digest.update(b"r" if self.config.residual else b"-")
        for name in _param_names(len(self.config.layer_shapes())):
            digest.update(self.params[name].tobytes())
        return digest.hexdigest()[:12]

    def __repr__(self) -> str:
        return (
            f"SameHead(id={self.head_id}, backbone={self.backbone!r}, {self.dim_in}->"
            f"{list(self.config.hidden)}->{self.dim_out}, residual={self.config.residual})"
        )


def build_torch_mlp(config: SameConfig):
    """The torch twin of :meth:`SameHead.transform` (without the final normalisation)."""
    import torch
    from torch import nn

    class _Mlp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(i, o) for o, i in config.layer_shapes())
            self.residual = config.residual

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = x
            for i, layer in enumerate(self.layers):
                h = layer(h)
                if i < len(self.layers) - 1:
                    h = torch.relu(h)
            if self.residual:
                h = h + x
            return torch.nn.functional.normalize(h, dim=-1)

    module = _Mlp()
    if config.residual:
        # start as (almost) the identity: the correction branch outputs ~0
        with torch.no_grad():
            module.layers[-1].weight.mul_(0.01)
            module.layers[-1].bias.zero_()
    return module


def _init_params(shapes: Sequence[tuple[int, int]], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    params = {}
    for i, (out_dim, in_dim) in enumerate(shapes):
        bound = 1.0 / np.sqrt(in_dim)
        params[f"layers.{i}.weight"] = rng.uniform(-bound, bound, (out_dim, in_dim)).astype(
            np.float32
        )
        params[f"layers.{i}.bias"] = rng.uniform(-bound, bound, (out_dim,)).astype(np.float32)
    return params
