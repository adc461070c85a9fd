"""Per-category indexes: kind by size, tuning to a recall, updates, tombstones, compaction."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from shopthelook import ann
from shopthelook.errors import CatalogError


def unit(rows: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Points on the sphere with some cluster structure (uniform ones are needlessly hard)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dim))
    x = centres[rng.integers(0, 40, rows)] + rng.normal(size=(rows, dim)) * 1.5
    x = x.astype(np.float32)
    faiss.normalize_L2(x)
    return x


@pytest.fixture(scope="module")
def data():
    x = unit(6000)
    return x, np.arange(len(x), dtype=np.int64) * 7 + 3  # ids unlike row numbers


@pytest.fixture(scope="module")
def fresh():
    """Queries from the same distribution that no index holds."""
    return unit(6400)[6000:]


def exact_top(x, ids, queries, k):
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    return ids[index.search(queries, k)[1]]


def recall(found, truth):
    return np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])


def test_kind_follows_size():
    options = ann.IndexOptions(exact_max=1000, pq_min=100_000)
    assert ann.choose_kind(1000, options) == "flat"
    assert ann.choose_kind(1001, options) == "ivf-sq8"
    assert ann.choose_kind(100_000, options) == "ivf-pq"
    assert ann.choose_kind(5000, ann.IndexOptions(kind="hnsw")) == "hnsw"
    assert ann.choose_kind(50, ann.IndexOptions(kind="hnsw")) == "flat"  # too few to train
    with pytest.raises(CatalogError, match="unknown index kind 'annoy'"):
        ann.choose_kind(5000, ann.IndexOptions(kind="annoy"))


def test_small_category_is_exact(data):
    x, ids = data
    index, spec = ann.build_index(x[:500], ids[:500], exact_max=1000)
    assert spec.kind == "flat" and spec.recall is None
    _, found = ann.search(index, spec, x[:5], 3)
    assert list(found[:, 0]) == list(ids[:5])


@pytest.mark.parametrize("kind", ["ivf-sq8", "hnsw"])
def test_approximate_index_is_tuned_to_the_target_recall_on_fresh_queries(data, fresh, kind):
    x, ids = data
    index, spec = ann.build_index(x, ids, exact_max=1000, kind=kind, target_recall=0.95)
    assert spec.kind == kind and spec.target_met and spec.recall >= 0.95
    assert spec.params["nprobe" if kind == "ivf-sq8" else "efSearch"] >= 1
    _, found = ann.search(index, spec, fresh, 10)  # never seen by the tuning
    assert recall(found, exact_top(x, ids, fresh, 10)) >= 0.92
    assert ann.index_bytes(index) < x.nbytes  # SQ8 codes (+ graph) stay below float32


def test_spec_and_index_survive_a_save_and_load(data):
    x, ids = data
    index, spec = ann.build_index(x, ids, exact_max=1000)
    loaded = faiss.deserialize_index(faiss.serialize_index(index))
    spec2 = ann.IndexSpec.from_dict(spec.to_dict())
    faiss.extract_index_ivf(loaded).nprobe = 1  # whatever the file held
    ann.apply_search_params(loaded, spec2)
    assert faiss.extract_index_ivf(loaded).nprobe == spec.params["nprobe"]
    a = ann.search(index, spec, x[:20], 10)[1]
    b = ann.search(loaded, spec2, x[:20], 10)[1]
    assert (a == b).all()
    with pytest.raises(CatalogError, match="unknown kind"):
        ann.IndexSpec.from_dict({**spec.to_dict(), "kind": "lsh"})


def test_pq_with_exact_refinement_meets_the_target_in_less_memory(data):
    x, ids = data
    rescore = ann.rescorer_for(x, ids)
    index, spec = ann.build_index(x, ids, exact_max=1000, kind="ivf-pq", rescore=rescore)
    assert spec.params["refine"] >= 4 and spec.recall >= 0.95
    scores, found = ann.search(index, spec, x[:50], 10, rescore=rescore)
    # re-scored: the scores are exact inner products, best first
    np.testing.assert_allclose(
        scores[:, 0], np.einsum("ij,ij->i", x[:50], rescore(found[:, 0])), rtol=1e-5
    )
    assert ann.index_bytes(index) < x.nbytes / 2


def test_build_refuses_mismatched_ids(data):
    x, ids = data
    with pytest.raises(CatalogError, match="vectors for"):
        ann.build_index(x[:10], ids[:9])
    with pytest.raises(TypeError, match="unknown option"):
        ann.build_index(x[:10], ids[:10], nprobe=3)


def test_adding_to_ivf_moves_no_other_result(data):
    x, ids = data
    index, spec = ann.build_index(x[:5000], ids[:5000], exact_max=1000)
    queries = x[:200]
    _, before = ann.search(index, spec, queries, 10)
    ann.add_vectors(index, spec, x[5000:], ids[5000:])
    _, after = ann.search(index, spec, queries, 10)
    new = set(ids[5000:].tolist())
    for old, now in zip(before, after, strict=True):
        kept = [i for i in now if i not in new]
        assert kept == list(old[: len(kept)])  # old results keep their order; new ones slot in


@pytest.mark.parametrize("kind", ["flat", "ivf-sq8"])
def test_remove_deletes_in_place(data, kind):
    x, ids = data
    index, spec = ann.build_index(x, ids, exact_max=100_000 if kind == "flat" else 1000)
    gone = ids[:100]
    assert ann.remove_ids(index, spec, gone) == 100
    assert index.ntotal == len(x) - 100 and ann.count_tombstones(index) == 0
    _, found = ann.search(index, spec, x[:100], 10)
    assert not set(found.ravel()) & set(gone)
    assert ann.remove_ids(index, spec, np.array([-5], np.int64)) == 0  # unknown: nothing removed


def test_hnsw_deletes_are_tombstones_until_compaction(data):
    x, ids = data
    index, spec = ann.build_index(x, ids, exact_max=1000, kind="hnsw")
    gone = ids[:800]
    assert ann.remove_ids(index, spec, gone) == 800
    assert ann.count_tombstones(index) == 800 and ann.live_count(index) == len(x) - 800
    # tombstones persist in the index file itself
    index = faiss.deserialize_index(faiss.serialize_index(index))
    ann.apply_search_params(index, spec)
    assert ann.count_tombstones(index) == 800
    _, found = ann.search(index, spec, x[:50], 10)
    assert (found >= 0).all() and not set(found.ravel()) & set(gone)  # still 10 live results
    assert "tombstones" in ann.needs_compaction(index, spec)
    index, spec = ann.compact(
        x[800:], ids[800:], spec, ann.IndexOptions(exact_max=1000, kind="hnsw")
    )
    assert ann.count_tombstones(index) == 0 and index.ntotal == len(x) - 800
    assert ann.needs_compaction(index, spec) is None


def test_compaction_is_asked_for_when_a_kind_no_longer_fits_the_size(data):
    x, ids = data
    options = ann.IndexOptions(exact_max=1000)
    flat, flat_spec = ann.build_index(x[:900], ids[:900], options=options)
    ann.add_vectors(flat, flat_spec, x[900:3000], ids[900:3000])
    assert "exact index holds 3000" in ann.needs_compaction(flat, flat_spec, options)
    ivf, ivf_spec = ann.build_index(x[:1200], ids[:1200], options=ann.IndexOptions(exact_max=1000))
    ann.add_vectors(ivf, ivf_spec, x[1200:], ids[1200:])
    assert "grew from 1200" in ann.needs_compaction(ivf, ivf_spec, options)


def test_tuning_can_use_real_queries(data, fresh):
    x, ids = data
    index, spec = ann.build_index(x, ids, exact_max=1000, kind="hnsw", tune_queries=fresh[:200])
    assert spec.tuning_queries == 200 and spec.recall >= 0.95
    _, found = ann.search(index, spec, fresh[200:], 10)
    assert recall(found, exact_top(x, ids, fresh[200:], 10)) >= 0.92
