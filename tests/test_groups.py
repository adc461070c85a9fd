"""Group tables, group similarity (mean / max / mean-top-K), lookalikes, HitRate@K."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shopthelook.core.errors import DatasetError
from shopthelook.core.groups import drop_small_groups, load_groups, split_groups
from shopthelook.lookalikes import (
    Aggregate,
    creator_hit_rate,
    group_similarity,
    hit_rates_from_similarity,
    lookalikes,
    split_halves,
)


def _data(groups=12, per=5, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    lab = np.repeat(np.arange(groups), per).astype(str)
    x = (
        rng.normal(size=(groups * per, dim))
        + 1.5 * rng.normal(size=(groups, dim))[np.repeat(np.arange(groups), per)]
    )
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), lab


def _brute_group_sim(qa, qb, aggregate):
    s = qa @ qb.T
    if aggregate.kind == "max":
        return s.max()
    if aggregate.kind == "mean-top-k":
        flat = np.sort(s.ravel())[::-1]
        return flat[: aggregate.k].mean()
    ma, mb = qa.mean(0), qb.mean(0)
    return ma @ mb / np.linalg.norm(ma) / np.linalg.norm(mb)


@pytest.mark.parametrize("agg", ["mean", "max", "mean-top-3"])
def test_hit_rate_matches_brute_force(agg):
    x, lab = _data()
    aggregate = Aggregate.parse(agg)
    a, b = split_halves(lab, seed=5)
    names = sorted(set(lab))
    hits = {k: 0 for k in (1, 5, 10, 50)}
    for g in names:
        qa = x[a & (lab == g)]
        scores = {h: _brute_group_sim(qa, x[b & (lab == h)], aggregate) for h in names}
        better = sum(1 for h in names if h != g and scores[h] >= scores[g])
        for k in hits:
            hits[k] += better < k
    expected = {k: v / len(names) for k, v in hits.items()}
    got = creator_hit_rate(x, lab, aggregate=aggregate, seed=5)
    assert got == pytest.approx(expected)
    assert 0 < got[1] < 1  # the data are neither trivial nor hopeless, so the test can fail


def test_split_halves_are_disjoint_and_cover_splittable_groups():
    lab = np.array(["a"] * 5 + ["b"] * 2 + ["c"])
    a, b = split_halves(lab, seed=0)
    assert not np.any(a & b)
    assert (a & (lab == "a")).sum() == 2 and (b & (lab == "a")).sum() == 3
    assert not a[-1] and not b[-1]  # the one-member group cannot be split


def test_hit_rate_ties_count_against_the_query():
    sim = np.ones((3, 3))
    assert hit_rates_from_similarity(sim, ks=(1, 3)) == {1: 0.0, 3: 1.0}


def test_hit_rate_held_out_groups_only():
    x, lab = _data()
    held = sorted(set(lab))[:4]
    got = creator_hit_rate(x, lab, groups=held, ks=(1, 5))
    assert got[5] == 1.0  # only 4 candidates remain


def test_group_similarity_shapes_and_lookalikes():
    x, lab = _data()
    names = sorted(set(lab))
    sim = group_similarity(x, lab, x, lab, names[:3], names, Aggregate("max"))
    assert sim.shape == (3, len(names))
    assert np.allclose(np.diag(sim[:, :3]), 1.0, atol=1e-5)  # a group's best pair is itself
    top = lookalikes(x, lab, names[0], k=4)
    assert len(top) == 4 and names[0] not in [g for g, _ in top]
    assert [s for _, s in top] == sorted((s for _, s in top), reverse=True)


def test_lookalikes_unknown_group_is_a_clear_error():
    x, lab = _data()
    with pytest.raises(DatasetError, match="unknown group id 'nobody'"):
        lookalikes(x, lab, "nobody")


def test_aggregate_parse():
    assert Aggregate.parse("mean-top-5") == Aggregate("mean-top-k", 5)
    with pytest.raises(DatasetError, match="unknown aggregate"):
        Aggregate.parse("median")


def test_csv_groups_and_bad_files(tmp_path):
    (tmp_path / "img").mkdir()
    pd.DataFrame({"image": ["img/1.jpg", "img/2.jpg", "img/3.jpg", "img/4.jpg", "img/5.jpg"],
                  "group": ["x", "x", "y", "y", "z"]}).to_csv(tmp_path / "g.csv", index=False)  # fmt: skip
    table = load_groups(tmp_path / "g.csv")
    assert list(table.columns) == ["image", "group", "item_id"]
    assert table["image"].iloc[0] == str((tmp_path / "img" / "1.jpg").resolve())
    kept = drop_small_groups(table)
    assert sorted(kept["group"].unique()) == ["x", "y"]

    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DatasetError, match="empty"):
        load_groups(tmp_path / "empty.csv")
    (tmp_path / "nogroup.csv").write_text("image,style\na.jpg,x\n")
    with pytest.raises(DatasetError, match="missing column"):
        load_groups(tmp_path / "nogroup.csv")
    (tmp_path / "blank.csv").write_text("image,group\na.jpg,\n")
    with pytest.raises(DatasetError, match="no rows"):
        load_groups(tmp_path / "blank.csv")
    singles = pd.DataFrame({"image": ["a", "b"], "group": ["p", "q"], "item_id": ["a", "b"]})
    with pytest.raises(DatasetError, match="at least 2 images"):
        drop_small_groups(singles)
    with pytest.raises(DatasetError, match="unknown group source"):
        load_groups("nonsense-source")


def test_split_groups_disjoint_and_deterministic():
    ids = [f"g{i}" for i in range(50)]
    tr, va, te = split_groups(ids, val_fraction=0.2, test_fraction=0.2, seed=7)
    assert len(va) == 10 and len(te) == 10 and len(tr) == 30
    assert not (set(tr) & set(va)) and not (set(tr) & set(te)) and not (set(va) & set(te))
    assert (tr, va, te) == split_groups(
        list(reversed(ids)), val_fraction=0.2, test_fraction=0.2, seed=7
    )


@pytest.mark.shared
def test_real_group_sources(shared_root):
    data = shared_root / "data"
    clothing = load_groups("clothing", data)
    assert (
        clothing["group"].nunique() > 300
        and clothing["image"].map(lambda p: p.startswith("/")).all()
    )
    rooms = load_groups("ikea-rooms", data)
    assert rooms["group"].nunique() > 100
    assert load_groups("hm-customers", data)["group"].nunique() > 500
    assert load_groups("furniture-styles", data)["group"].nunique() == 5
