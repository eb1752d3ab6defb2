"""tl.search / tl.search_cells / tl.build_index: exact top-k against brute force, filters, indexes and their checks."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from conftest import make_adata

import mmcontext as mmc
from mmcontext._errors import StaleIndexError
from mmcontext._validation import MMContextKeyError, adata_digest
from mmcontext.tl import _nearest
from mmcontext.tl._texts import query_texts, text_embeddings

QUERIES = ["B cells", "natural killer cells", "a monocyte from blood"]


def _model(seed: int, input_dim: int = 30):
    return mmc.models.MMContextEncoder.build(input_dim, hidden_dim=32, n_layers=2, seed=seed, device="cpu")


@pytest.fixture(scope="module")
def model():
    return _model(0)


@pytest.fixture
def cells(model):
    """300 embedded synthetic cells (obsm['X_mmc'], with the embed record)."""
    adata = make_adata(300, 30, n_types=5)
    adata.obsm["X_mmc_init"] = adata.X.copy()
    mmc.tl.embed(adata, model)
    return adata


def _brute(adata, model, queries, k, rows=None, expand="ontology"):
    """Every cell scored, sorted: the reference the search must equal."""
    E = adata.obsm["X_mmc"] if rows is None else adata.obsm["X_mmc"][rows]
    Q = text_embeddings(model, query_texts(list(queries), expand=expand))
    S = Q @ E.T
    order = np.argsort(-S, axis=1, kind="stable")[:, :k]
    names = np.asarray(adata.obs_names if rows is None else adata.obs_names[rows])
    return names[order], np.take_along_axis(S, order, axis=1)


def _per_query(hits, query):
    part = hits[hits["query"] == query].sort_values("rank")
    return part["obs_name"].to_numpy(), part["score"].to_numpy()


def test_exact_search_equals_brute_force(cells, model):
    hits = mmc.tl.search(cells, model, QUERIES, k=17, chunk_size=64)
    assert list(hits.columns) == ["query", "rank", "obs_name", "score"]
    assert list(hits["query"].cat.categories) == QUERIES
    assert hits["score"].dtype == np.float32 and len(hits) == 3 * 17
    names, scores = _brute(cells, model, QUERIES, 17)
    for j, q in enumerate(QUERIES):
        got_names, got_scores = _per_query(hits, q)
        np.testing.assert_array_equal(got_names, names[j])
        np.testing.assert_allclose(got_scores, scores[j], rtol=1e-5, atol=1e-6)
        assert (np.diff(got_scores) <= 0).all()
        assert list(hits[hits["query"] == q]["rank"]) == list(range(1, 18))


def test_single_string_query_and_k_larger_than_the_data(cells, model):
    hits = mmc.tl.search(cells, model, "T cells", k=1000)
    assert len(hits) == cells.n_obs and hits["obs_name"].is_unique
    assert set(hits["obs_name"]) == set(cells.obs_names)


def test_obs_filter_by_dict_and_mask(cells, model):
    rows = np.flatnonzero(cells.obs["donor_id"].isin(["d1", "d2"]).to_numpy() & (cells.obs["tissue"] == "lung"))
    by_dict = mmc.tl.search(cells, model, QUERIES, k=9, obs_filter={"donor_id": ["d1", "d2"], "tissue": "lung"})
    mask = np.zeros(cells.n_obs, bool)
    mask[rows] = True
    by_mask = mmc.tl.search(cells, model, QUERIES, k=9, obs_filter=mask)
    by_series = mmc.tl.search(cells, model, QUERIES, k=9, obs_filter=pd.Series(mask, index=cells.obs_names)[::-1])
    pd.testing.assert_frame_equal(by_dict, by_mask)
    pd.testing.assert_frame_equal(by_dict, by_series)
    names, _ = _brute(cells, model, QUERIES, 9, rows=rows)
    for j, q in enumerate(QUERIES):
        np.testing.assert_array_equal(_per_query(by_dict, q)[0], names[j])
    assert cells.uns["mmcontext"]["mmc_search"]["n_searched"] == len(rows)


def test_search_cells_like_these(cells):
    e = cells.obsm["X_mmc"]
    query = cells.obs_names[:4]
    hits = mmc.tl.search_cells(cells, list(query), k=10)
    mean = e[:4].mean(0)
    mean /= np.linalg.norm(mean)
    s = e @ mean
    s[:4] = -np.inf  # the query cells are left out
    np.testing.assert_array_equal(hits["obs_name"].to_numpy(), np.asarray(cells.obs_names)[np.argsort(-s)[:10]])
    assert list(hits["query"].cat.categories) == ["mean of 4 cells"]
    mask = np.zeros(cells.n_obs, bool)
    mask[[5, 6]] = True
    each = mmc.tl.search_cells(cells, mask, k=5, combine=None, exclude_query=False)
    assert list(each["query"].cat.categories) == [cells.obs_names[5], cells.obs_names[6]]
    first = each[each["query"] == cells.obs_names[5]]
    assert first["obs_name"].iloc[0] == cells.obs_names[5]  # a cell is its own nearest neighbour
    assert first["score"].iloc[0] == pytest.approx(1.0, abs=1e-5)
    rec = cells.uns["mmcontext"]["mmc_search_cells"]
    assert rec["n_query_cells"] == 2 and rec["combine"] == "None"


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("exact", {}),
        ("faiss", {"factory": "IVF4,Flat", "nprobe": 4, "train_size": 300}),
        ("usearch", {}),
        ("hnswlib", {}),
    ],
)
def test_index_save_reload_and_search(cells, model, tmp_path, method, params):
    index = mmc.tl.build_index(cells, method=method, path=tmp_path / "idx", **params)
    assert (tmp_path / "idx" / "manifest.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary sibling left
    loaded = mmc.tl.load_index(tmp_path / "idx")
    assert (loaded.method, loaded.n_obs, loaded.key) == (method, cells.n_obs, "X_mmc")
    assert loaded.model_fingerprint == mmc.models.model_fingerprint(model)
    exact = mmc.tl.search(cells, model, QUERIES, k=20)
    for idx in (index, loaded, str(tmp_path / "idx")):
        hits = mmc.tl.search(cells, model, QUERIES, k=20, index=idx)
        recall = np.mean([len(set(_per_query(hits, q)[0]) & set(_per_query(exact, q)[0])) / 20 for q in QUERIES])
        assert recall >= 0.95, (method, recall)
        assert cells.uns["mmcontext"]["mmc_search"]["method"] == method
    assert cells.uns["mmcontext"]["mmc_search"]["index"] == str((tmp_path / "idx").resolve())
    assert cells.uns["mmcontext"]["index"]["method"] == method


def test_stale_index_is_refused_naming_what_differs(cells, model, tmp_path):
    mmc.tl.build_index(cells, path=tmp_path / "idx")
    index = mmc.tl.load_index(tmp_path / "idx")
    with pytest.raises(StaleIndexError, match=r"covers 300 cells .* adata has 299"):
        sub = cells[1:].copy()
        mmc.tl.search(sub, model, "B cells", index=index)
    shuffled = cells[::-1].copy()
    with pytest.raises(StaleIndexError, match="other cells or another order"):
        mmc.tl.search(shuffled, model, "B cells", index=index)
    other = _model(1)
    with pytest.raises(StaleIndexError, match=r"embedding of model .* not of this model"):
        mmc.tl.search(cells, other, "B cells", index=index)
    cells.obsm["X_other"] = cells.obsm["X_mmc"]
    with pytest.raises(StaleIndexError, match=r"built from obsm\['X_mmc'\], not obsm\['X_other'\]"):
        mmc.tl.search(cells, model, "B cells", index=index, use_rep="X_other")
    mmc.tl.embed(cells, other)  # the cells re-embedded by another model since the index was built
    with pytest.raises(StaleIndexError, match="embedding of model"):
        mmc.tl.search_cells(cells, cells.obs_names[0], index=index)
    with pytest.raises(StaleIndexError, match="embedded by model"):
        mmc.tl.search(cells, model, "B cells")  # exact: obsm holds another model's embedding


def test_records_survive_h5ad(cells, model, tmp_path):
    mmc.tl.build_index(cells, method="exact")
    mmc.tl.search(cells, model, QUERIES, k=5, obs_filter={"donor_id": ["d1", "d3"]})
    mmc.tl.search_cells(cells, cells.obs_names[:2], k=5, key_added="like_these")
    cells.write_h5ad(tmp_path / "s.h5ad")
    back = ad.read_h5ad(tmp_path / "s.h5ad")
    rec = back.uns["mmcontext"]["mmc_search"]
    assert list(rec["queries"]) == QUERIES and rec["k"] == 5 and rec["method"] == "exact"
    assert list(rec["obs_filter"]["donor_id"]) == ["d1", "d3"]
    assert rec["model_fingerprint"] == mmc.models.model_fingerprint(model)
    assert list(back.uns["mmcontext"]["like_these"]["cells"]) == list(cells.obs_names[:2])


def test_approximate_index_with_filters(cells, model, monkeypatch):
    index = mmc.tl.build_index(cells, method="hnswlib")
    filt = {"tissue": "lung"}
    exact = mmc.tl.search(cells, model, QUERIES, k=10, obs_filter=filt)
    small = mmc.tl.search(cells, model, QUERIES, k=10, obs_filter=filt, index=index)  # few cells: scored exactly
    assert cells.uns["mmcontext"]["mmc_search"]["method"] == "exact"
    pd.testing.assert_frame_equal(small, exact)
    monkeypatch.setattr(_nearest, "EXACT_SUBSET", 0)
    monkeypatch.setattr(_nearest, "EXACT_FRACTION", 0.0)
    post = mmc.tl.search(cells, model, QUERIES, k=10, obs_filter=filt, index=index)  # widened, then post-filtered
    assert cells.uns["mmcontext"]["mmc_search"]["method"] == "hnswlib"
    assert cells.obs.loc[post["obs_name"], "tissue"].eq("lung").all()
    for q in QUERIES:
        assert len(set(_per_query(post, q)[0]) & set(_per_query(exact, q)[0])) >= 9


def test_bad_inputs_name_the_argument(cells, model, tmp_path):
    before = adata_digest(cells)
    cases = [
        (dict(queries=[]), ValueError, "queries is empty"),
        (dict(queries=["B cells", "B cells"]), ValueError, "queries must be distinct"),
        (dict(k=0), ValueError, "k must be a positive integer"),
        (dict(k=2.5), ValueError, "k must be"),
        (dict(obs_filter={"donor": "d1"}), MMContextKeyError, r"obs_filter names adata.obs\['donor'\]"),
        (dict(obs_filter={"donor_id": "nobody"}), ValueError, "selects no cells"),
        (dict(obs_filter=np.ones(3, bool)), ValueError, r"shape \(300,\)"),
        (dict(obs_filter="lung"), ValueError, "obs_filter must be"),
        (dict(index=42), TypeError, "index must be"),
        (dict(index=tmp_path / "none"), FileNotFoundError, "manifest.json"),
        (dict(use_rep="X_mmcc"), MMContextKeyError, r"obsm\['X_mmcc'\] not found. Did you mean 'X_mmc'"),
        (dict(use_rep="X_mmc_init"), ValueError, "unit-length rows"),
    ]
    for kwargs, err, msg in cases:
        call = {"queries": "B cells", **kwargs}
        q = call.pop("queries")
        with pytest.raises(err, match=msg):
            mmc.tl.search(cells, model, q, **call)
    with pytest.raises(TypeError, match="model must be"):
        mmc.tl.search(cells, "my_model", "B cells")
    with pytest.raises(MMContextKeyError, match=r"not in adata\.obs_names"):
        mmc.tl.search_cells(cells, ["cell0", "nope"])
    with pytest.raises(ValueError, match="combine="):
        mmc.tl.search_cells(cells, "cell0", combine="max")
    with pytest.raises(ValueError, match="method='annoy' is not one of"):
        mmc.tl.build_index(cells, method="annoy")
    with pytest.raises(TypeError, match="takes no parameter \\['nlist'\\]"):
        mmc.tl.build_index(cells, method="faiss", nlist=3)
    assert adata_digest(cells) == before
    bare = ad.AnnData(obs=cells.obs.copy(), obsm={"X_mmc": cells.obsm["X_mmc"]})
    with pytest.raises(ValueError, match="pass `model=`"):
        mmc.tl.build_index(bare)
    assert mmc.tl.build_index(bare, model=model).model_fingerprint == mmc.models.model_fingerprint(model)
    with pytest.raises(StaleIndexError, match="not by the model passed"):
        mmc.tl.build_index(cells, model=_model(2))


def test_missing_backend_names_the_extra(cells, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    monkeypatch.delitem(__import__("sys").modules, "faiss", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'mmcontext\[search\]'"):
        mmc.tl.build_index(cells, method="faiss")


def test_faiss_default_quantises_large_atlases():
    from mmcontext.data._ann import FAISS_SQ8_FROM, Faiss

    small, large = Faiss.defaults(10_000, 384), Faiss.defaults(FAISS_SQ8_FROM, 384)
    assert small["factory"].endswith(",Flat") and large["factory"].endswith(",SQ8")
    assert large["factory"].startswith("IVF") and large["nprobe"] == small["nprobe"] == 48
