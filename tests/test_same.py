"""SAME head: triplet loss by hand, training on a synthetic grouping, save/load and bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from embedder.factory import load_head
from embedder.head import Embedder
from embedder.same import SameConfig, SameHead
from embedder.train_same import PKSampler, TrainConfig, train_same, triplet_loss
from shopthelook.core.errors import DatasetError, HeadError
from shopthelook.lookalikes import creator_hit_rate


def _unit(rows):
    t = torch.tensor(rows, dtype=torch.float32)
    return torch.nn.functional.normalize(t, dim=1)


def test_triplet_loss_hand_computed_hard():
    # group 0: a=(1,0), p=(0.6,0.8); group 1: n=(0.8,0.6), m=(0,1)
    emb = _unit([[1, 0], [0.6, 0.8], [0.8, 0.6], [0, 1]])
    labels = torch.tensor([0, 0, 1, 1])
    loss, active = triplet_loss(emb, labels, margin=0.1, mining="hard")
    # pairs (anchor, positive, hardest negative sim, positive sim):
    # (0,1): s_ap=.6, hardest neg of 0 = max(.8, 0)=.8 -> .8-.6+.1 = .3
    # (1,0): s_ap=.6, hardest neg of 1 = max(.96, .8)=.96 -> .46
    # (2,3): s_ap=.6, hardest neg of 2 = max(.8, .96)=.96 -> .46
    # (3,2): s_ap=.6, hardest neg of 3 = max(0, .8)=.8 -> .3
    assert loss.item() == pytest.approx((0.3 + 0.46 + 0.46 + 0.3) / 4, abs=1e-6)
    assert active == 1.0


def test_triplet_loss_semi_hard_and_all():
    emb = _unit([[1, 0], [0.6, 0.8], [0.8, 0.6], [0, 1]])
    labels = torch.tensor([0, 0, 1, 1])
    # semi-hard for pair (0,1): negatives with .5 < s < .6: none -> hardest (.8) -> .3
    # pair (3,2): negatives of 3 are 0 (s=0) and 1 (s=.8): none in (.5,.6) -> .8 -> .3
    loss, _ = triplet_loss(emb, labels, margin=0.1, mining="semi-hard")
    assert loss.item() == pytest.approx((0.3 + 0.46 + 0.46 + 0.3) / 4, abs=1e-6)
    # margin 0.7: pair (0,1) semi-hard window (-.1, .6) holds neg 3 (s=0) -> 0 - .6 + .7 = .1
    loss, _ = triplet_loss(emb, labels, margin=0.7, mining="semi-hard")
    # (1,0): negs of 1: 2 (.96), 3 (.8): none < .6 -> hardest .96 -> 1.06
    # (2,3): negs of 2: 0 (.8), 1 (.96): none -> 1.06 ; (3,2): negs 0 (0) in window -> .1
    assert loss.item() == pytest.approx((0.1 + 1.06 + 1.06 + 0.1) / 4, abs=1e-6)
    # all: mean over every (a, p, n) of relu(s_an - s_ap + m), margin .1
    loss, _ = triplet_loss(emb, labels, margin=0.1, mining="all")
    per = [0.8 - 0.6 + 0.1, 0.0, 0.96 - 0.6 + 0.1, 0.8 - 0.6 + 0.1, 0.8 - 0.6 + 0.1,
           0.96 - 0.6 + 0.1, 0.0, 0.8 - 0.6 + 0.1]  # fmt: skip
    assert loss.item() == pytest.approx(sum(per) / 8, abs=1e-6)


def test_triplet_loss_without_negatives_is_zero():
    emb = _unit([[1, 0], [0, 1]])
    loss, active = triplet_loss(emb, torch.tensor([3, 3]), margin=0.2)
    assert loss.item() == 0.0 and active == 0.0


def _synthetic(groups=300, per=6, dim=32, seed=0):
    """A weak group signal in 4 dims under strong per-image nuisance in the rest."""
    rng = np.random.default_rng(seed)
    lab = np.repeat(np.arange(groups), per)
    x = np.zeros((groups * per, dim))
    x[:, :4] = rng.normal(size=(groups, 4))[lab] * 0.5
    x[:, 4:] = rng.normal(size=(groups * per, dim - 4)) * 1.5
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), lab.astype(str), lab


def test_training_lowers_loss_and_raises_hit_rate(tmp_path):
    x, labels, lab = _synthetic()
    train, val, test = lab < 200, (lab >= 200) & (lab < 240), lab >= 240

    def validate(head):
        return creator_hit_rate(head.transform(x[val]), labels[val], ks=(10,))[10]

    cfg = TrainConfig(dim_out=16, hidden=(64, 64, 64), groups_per_batch=16, max_epochs=8,
                      steps_per_epoch=20, patience=3, seed=1)  # fmt: skip
    result = train_same(
        x[train], labels[train], backbone="synthetic", config=cfg, validate=validate
    )
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    before = creator_hit_rate(x[test], labels[test], ks=(10,))[10]
    after = creator_hit_rate(result.head.transform(x[test]), labels[test], ks=(10,))[10]
    assert after >= 2 * before, (before, after)
    assert result.head.config.metrics["best_epoch"] == result.best_epoch

    # the saved head reloads to the same function, through the generic loader too
    result.head.save(tmp_path / "head")
    again = load_head(tmp_path / "head")
    assert isinstance(again, SameHead) and again.head_id == result.head.head_id
    np.testing.assert_allclose(again.transform(x[:5]), result.head.transform(x[:5]), atol=1e-6)
    meta = json.loads((tmp_path / "head" / "head.json").read_text())
    assert meta["kind"] == "same" and meta["backbone"] == "synthetic" and meta["dim_in"] == 32


def test_training_is_deterministic_for_a_seed():
    x, labels, _ = _synthetic(groups=40, per=4, dim=16)
    cfg = TrainConfig(dim_out=8, hidden=(16, 16, 16), groups_per_batch=8, max_epochs=2,
                      steps_per_epoch=5, seed=3)  # fmt: skip
    a = train_same(x, labels, backbone="s", config=cfg).head
    b = train_same(x, labels, backbone="s", config=cfg).head
    assert a.head_id == b.head_id


def test_numpy_forward_matches_torch():
    cfg = SameConfig(backbone="b", dim_in=10, dim_out=6, hidden=(7, 8, 9))
    head = SameHead(cfg)
    x = np.random.default_rng(0).normal(size=(4, 10)).astype(np.float32)
    with torch.no_grad():
        expected = head.to_torch()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(head.transform(x), expected, atol=1e-5)
    assert np.allclose(np.linalg.norm(head.transform(x), axis=1), 1.0, atol=1e-5)


def test_residual_head_starts_near_identity():
    from embedder.same import build_torch_mlp

    cfg = SameConfig(backbone="b", dim_in=12, dim_out=12, residual=True, hidden=(8, 8, 8))
    module = build_torch_mlp(cfg)
    head = SameHead.from_torch(cfg, module)
    x = np.random.default_rng(0).normal(size=(5, 12)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert np.min(np.sum(head.transform(x) * x, axis=1)) > 0.99


def test_pk_sampler_needs_two_groups_with_two_members():
    with pytest.raises(DatasetError, match="two groups"):
        PKSampler(np.array([0, 1, 2]), 4, 2, seed=0)
    sampler = PKSampler(np.array([0, 0, 1, 1, 1, 2]), 4, 3, seed=0)
    batch = sampler.batch()
    assert len(batch) == 2 * 3 and 5 not in batch  # the single-member group is never drawn


def test_head_refuses_other_backbone_and_dimension():
    head = SameHead(SameConfig(backbone="yolo", dim_in=8, dim_out=4, hidden=(4, 4, 4)))

    class FakeBackbone:
        def __init__(self, name, dim):
            self.name, self.dim = name, dim

    with pytest.raises(HeadError, match="trained on backbone 'yolo'"):
        Embedder(FakeBackbone("hvf", 8), head)
    with pytest.raises(HeadError, match="expects 8-d input"):
        Embedder(FakeBackbone("yolo", 16), head)
    with pytest.raises(HeadError, match=r"expects \[n, 8\]"):
        head.transform(np.zeros((2, 5), dtype=np.float32))


def test_corrupt_head_files_are_clear_errors(tmp_path):
    head = SameHead(SameConfig(backbone="b", dim_in=6, dim_out=4, hidden=(5, 5, 5)))
    folder = head.save(tmp_path / "h")
    weights = folder / "head.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])
    with pytest.raises(HeadError, match="cannot be read"):
        SameHead.load(folder)

    folder = head.save(tmp_path / "h2")
    (folder / "head.json").write_text("{not json")
    with pytest.raises(HeadError, match="corrupt"):
        load_head(folder)

    folder = head.save(tmp_path / "h3")
    meta = json.loads((folder / "head.json").read_text())
    meta["dim_in"] = 7  # manifest no longer matches the weights
    (folder / "head.json").write_text(json.dumps(meta))
    with pytest.raises(HeadError, match="shape"):
        SameHead.load(folder)

    folder = head.save(tmp_path / "h4")
    (folder / "head.safetensors").unlink()
    with pytest.raises(HeadError, match="missing"):
        SameHead.load(folder)

    with pytest.raises(HeadError, match="three hidden layers"):
        SameConfig(backbone="b", dim_in=6, hidden=(4, 4))
