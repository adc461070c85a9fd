"""Per-category indexes: kind by size, tuning to a recall, updates, tombstones, compaction."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pandas as pd
import pytest

from catalog import ann
from shopthelook.core.errors import CatalogError


@pytest.fixture(autouse=True, scope="module")
def one_faiss_thread():
    """OpenMP threads spin on a busy shared machine; one thread keeps these tests quick."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


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
    assert ann.choose_kind(5000, ann.IndexOptions(exact_max=1000, kind="hnsw")) == "hnsw"
    assert ann.choose_kind(900, ann.IndexOptions(exact_max=1000, kind="hnsw")) == "flat"
    assert ann.choose_kind(200, ann.IndexOptions(exact_max=10, kind="hnsw")) == "flat"  # too few
    assert ann.choose_kind(5000, ann.IndexOptions(exact_max=1000, kind="flat")) == "flat"
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
    rescore = ann.rescorer_for(x, ids)
    index, spec = ann.build_index(x, ids, exact_max=1000, kind=kind, target_recall=0.95)
    assert spec.kind == kind and spec.target_met and spec.recall >= 0.95
    assert spec.params["nprobe" if kind == "ivf-sq8" else "efSearch"] >= 1
    _, found = ann.search(index, spec, fresh, 10, rescore=rescore)  # never seen by the tuning
    assert recall(found, exact_top(x, ids, fresh, 10)) >= 0.92
    # SQ8 codes are a quarter of float32; an HNSW graph adds ~8*M bytes per vector on top
    bound = x.nbytes / 3 if kind == "ivf-sq8" else len(x) * (x.shape[1] + 8 * 32 + 64)
    assert ann.index_bytes(index) < bound


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


@pytest.mark.parametrize("kind", ["flat", "ivf-sq8", "ivf-pq", "hnsw"])
def test_an_index_saved_without_a_spec_describes_itself(data, kind):
    x, ids = data
    index, spec = ann.build_index(x[:3000], ids[:3000], exact_max=1000, kind=kind, refine=1)
    loaded = faiss.deserialize_index(faiss.serialize_index(index))
    found = ann.spec_of(loaded)
    assert (found.kind, found.n, found.dim) == (kind, 3000, x.shape[1])
    key = {"flat": None, "hnsw": "efSearch"}.get(kind, "nprobe")
    assert key is None or found.params[key] == spec.params[key]


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


def test_near_duplicates_make_the_tuning_rescore_more_candidates():
    """~130 noisy copies per product (a replicated catalog): 8-bit codes cannot order copies,
    probing more lists does not help, re-scoring more candidates does."""
    rng = np.random.default_rng(0)
    base = unit(60, seed=4)

    def copies(n):
        x = (
            base[rng.integers(0, len(base), n)]
            + rng.normal(size=(n, 32)).astype(np.float32) * 0.005
        )
        x = x.astype(np.float32)
        faiss.normalize_L2(x)
        return x

    x, queries = copies(8000), copies(300)
    ids = np.arange(len(x), dtype=np.int64)
    rescore = ann.rescorer_for(x, ids)
    index, spec = ann.build_index(x, ids, exact_max=1000, refine=4, rescore=rescore)
    assert spec.params["refine"] > 4 and spec.recall >= 0.95
    _, found = ann.search(index, spec, queries, 10, rescore=rescore)
    assert recall(found, exact_top(x, ids, queries, 10)) >= 0.93
    _, codes_only = ann.build_index(x, ids, exact_max=1000, refine=1)
    assert codes_only.recall < 0.5  # what the same index reaches without re-scoring


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


def test_adding_near_duplicates_to_a_rescored_ivf_moves_no_other_result():
    """New products right beside old ones take places in the re-scored candidate pool; the
    search makes room for exactly them, so old results only make way for new products."""
    rng = np.random.default_rng(1)
    base = unit(60, seed=4)

    def copies(n):
        x = base[rng.integers(0, 60, n)] + rng.normal(size=(n, 32)).astype(np.float32) * 0.01
        x = x.astype(np.float32)
        faiss.normalize_L2(x)
        return x

    store = np.concatenate([copies(8000), copies(2000)])
    ids = np.arange(len(store), dtype=np.int64)
    index, spec = ann.build_index(
        store[:8000], ids[:8000], exact_max=1000, rescore=store.__getitem__
    )
    assert spec.params["refine"] > 1
    probes = store[:500]
    before = ann.search(index, spec, probes, 10, rescore=store.__getitem__)[1]
    ann.add_vectors(index, spec, store[8000:], ids[8000:])
    assert len(spec.added_ids) == 2000
    after = ann.search(index, spec, probes, 10, rescore=store.__getitem__)[1]
    entered = 0
    for old, now in zip(before, after, strict=True):
        kept = [i for i in now if i < 8000]
        assert kept == list(old[: len(kept)])
        entered += len(kept) < 10
    assert entered > 100  # new products did enter many results
    assert ann.IndexSpec.from_dict(spec.to_dict()).added_ids == spec.added_ids  # in the manifest


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
    assert ann.needs_compaction(index, spec, ann.IndexOptions(exact_max=1000, kind="hnsw")) is None


def test_compaction_is_asked_for_when_a_kind_no_longer_fits_the_size(data):
    x, ids = data
    options = ann.IndexOptions(exact_max=1000)
    flat, flat_spec = ann.build_index(x[:900], ids[:900], options=options)
    ann.add_vectors(flat, flat_spec, x[900:3000], ids[900:3000])
    assert "exact index holds 3000" in ann.needs_compaction(flat, flat_spec, options)
    ivf, ivf_spec = ann.build_index(x[:1200], ids[:1200], options=ann.IndexOptions(exact_max=1000))
    ann.add_vectors(ivf, ivf_spec, x[1200:], ids[1200:])
    assert "4800 vectors added since it was tuned" in ann.needs_compaction(ivf, ivf_spec, options)


def test_tuning_can_use_real_queries(data, fresh):
    x, ids = data
    index, spec = ann.build_index(
        x, ids, exact_max=1000, kind="hnsw", tune_queries=fresh[:200], refine=1
    )
    assert spec.tuning_queries == 200 and spec.recall >= 0.95
    _, found = ann.search(index, spec, fresh[200:], 10)  # no re-scoring: the graph alone
    assert recall(found, exact_top(x, ids, fresh[200:], 10)) >= 0.92


# -- the catalog on these indexes --
def wired_catalog(folder, n=3000, kind="auto"):
    """A saved 'hvf' catalog of n synthetic products in two categories, big enough for ANN."""
    from catalog import FORMAT_VERSION, Catalog
    from embedder import create_embedder
    from shopthelook.core.config import load_settings

    embedder = create_embedder(load_settings(backbone="hvf"))
    vectors = unit(n, dim=embedder.dim, seed=3)
    products = pd.DataFrame(
        {
            "product_id": [f"S{i:05d}" for i in range(n)],
            "image": [f"/nowhere/{i}.png" for i in range(n)],
            "category": np.where(np.arange(n) % 3 == 0, "sofa", "chair"),
            "name": None,
            "row_id": np.arange(n, dtype=np.int64),
        }
    )
    manifest = {
        "format_version": FORMAT_VERSION,
        "backbone": embedder.name,
        "head": embedder.head_id,
        "dim": embedder.dim,
        "next_row_id": n,
        "exact_index_max": 500,
        "index_kind": kind,
        "failures": [],
        "source_hash": "synthetic",
    }
    catalog = Catalog._assemble(products, vectors, manifest)
    catalog.save(folder / "catalog")
    return catalog, embedder


def top_ids(catalog, product_ids, category, k=10):
    queries = catalog.embeddings(product_ids)
    return [[p for p, _ in hits] for hits in catalog.search(queries, category, k)]


def test_catalog_records_tuned_indexes_and_reloads_them(tmp_path):
    from catalog import Catalog

    catalog, _ = wired_catalog(tmp_path)
    assert catalog.manifest["index"] == {"chair": "ivf-sq8", "sofa": "ivf-sq8"}
    params = catalog.manifest["index_params"]["chair"]
    assert params["params"]["nprobe"] >= 1 and params["recall"] >= 0.95
    loaded = Catalog.load(tmp_path / "catalog")
    probe = [f"S{i:05d}" for i in range(1, 60, 3)]  # chairs
    assert top_ids(loaded, probe, "chair") == top_ids(catalog, probe, "chair")
    assert all(
        hits[0] == pid for hits, pid in zip(top_ids(loaded, probe, "chair"), probe, strict=True)
    )


def test_catalog_add_leaves_other_results_alone_and_remove_deletes(tmp_path):
    from catalog import Catalog
    from tests.helpers import write_products

    catalog, embedder = wired_catalog(tmp_path)
    probe = [f"S{i:05d}" for i in range(1, 300, 3)]
    before = top_ids(catalog, probe, "chair")
    table = write_products(tmp_path / "extra", 6, seed0=200)
    assert catalog.add(table, embedder=embedder)["added"] == 6
    after = top_ids(catalog, probe, "chair")
    new = {f"P{200 + i:03d}" for i in range(6)}
    for old, now in zip(before, after, strict=True):
        kept = [p for p in now if p not in new]
        assert kept == old[: len(kept)]
    with pytest.raises(CatalogError, match="already in the catalog"):
        catalog.add(table, embedder=embedder)
    assert catalog.add(table, embedder=embedder, replace=True)["replaced"] == 6  # updated
    assert (
        len(catalog) == 3006
        and catalog.search(catalog.embeddings(["P200"]), "chair", 1)[0][0][0] == "P200"
    )
    with pytest.raises(CatalogError, match="not in the catalog"):
        catalog.remove(["S99999"])
    gone = [f"S{i:05d}" for i in range(1, 31, 3)]
    catalog.remove(gone)
    loaded = Catalog.load(tmp_path / "catalog")
    assert not set(sum(top_ids(loaded, probe[20:], "chair"), [])) & set(gone)
    assert loaded.manifest["counts"]["chair"] == 2000 - 10 + 2  # P200..P205: 2 chairs


def test_hnsw_catalog_compacts_after_many_removals(tmp_path):
    from catalog import Catalog

    catalog, _ = wired_catalog(tmp_path, kind="hnsw")
    assert set(catalog.manifest["index"].values()) == {"hnsw"}
    sofas = [f"S{i:05d}" for i in range(0, 3000, 3)]
    catalog.remove(sofas[:50])  # 5%: tombstones, no rebuild
    assert ann.count_tombstones(catalog.indexes["sofa"]) == 50
    loaded = Catalog.load(tmp_path / "catalog")  # tombstones are not a table mismatch
    assert loaded.manifest["counts"]["sofa"] == 950
    assert not set(sum(top_ids(loaded, sofas[50:80], "sofa"), [])) & set(sofas[:50])
    catalog.remove(sofas[50:120])  # past 10%: that index is rebuilt
    assert ann.count_tombstones(catalog.indexes["sofa"]) == 0
    assert catalog.compact() == {}
    assert set(catalog.compact(force=True)) == {"chair", "sofa"}


def test_catalog_whose_index_and_table_disagree_is_refused_at_load(tmp_path):
    import shutil

    from catalog import Catalog

    wired_catalog(tmp_path)
    folder = tmp_path / "catalog"
    files = json.loads((folder / "manifest.json").read_text())["index_files"]
    table = pd.read_parquet(folder / "products.parquet")
    # same number of products per category, other ids: only an id check notices
    table["row_id"] = table["row_id"] + 1_000_000
    table.to_parquet(folder / "products.parquet", index=False)
    with pytest.raises(CatalogError, match="holds ids that are not the table's"):
        Catalog.load(folder)
    shutil.copy(folder / "indexes" / files["sofa"], folder / "indexes" / files["chair"])
    with pytest.raises(CatalogError, match="index 'chair' holds 1000 vectors"):
        Catalog.load(folder)
