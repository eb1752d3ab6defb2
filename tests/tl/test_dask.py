"""tl.embed and tl.search on a dask-backed AnnData equal the in-memory results, also on a 2-worker LocalCluster."""

from __future__ import annotations

import anndata as ad
import h5py
import numpy as np
import pytest
from conftest import make_adata

import mmcontext as mmc

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def model():
    """A gene-panel model over the 30 genes of `make_adata` (untrained: the arithmetic is what is tested)."""
    ref = make_adata(60, 30)
    mmc.pp.prepare(ref, method="genes", caption_keys=False)
    model = mmc.models.MMContextEncoder.build(30, hidden_dim=16, seed=0, device="cpu")
    model.omics_encoder.set_input_arrays(genes=ref.var_names)
    model.omics_encoder.fit_scaler(ref.obsm["X_mmc_init"])
    return model


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        with distributed.Client(c) as client:
            yield client


def _data(n=500):
    adata = make_adata(n, 30, n_types=4)
    adata.X = np.abs(adata.X)  # log-normalised-like, non-negative
    mmc.pp.prepare(adata, method="genes", caption_keys=False)
    return adata


def test_embed_dask_obsm_on_a_local_cluster_equals_in_memory(model, cluster, tmp_path):
    adata = _data()
    expected = mmc.tl.embed(adata, model, copy=True).obsm["X_mmc"]
    lazy = adata.copy()
    lazy.obsm["X_mmc_init"] = da.from_array(adata.obsm["X_mmc_init"], chunks=(97, 30))
    mmc.tl.embed(lazy, model)
    out = lazy.obsm["X_mmc"]
    assert isinstance(out, da.Array) and out.numblocks[0] == 6  # lazy: one task per block, spread by the client
    assert lazy.uns["mmcontext"]["embed"]["dask"] is True
    np.testing.assert_array_equal(out.compute(), expected)
    mmc.tl.embed(lazy, model, out=tmp_path / "x.npy")  # streamed to a file, blocks computed on the workers
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), expected)
    assert cluster.run(lambda: 1)  # two live workers did the work
    assert len(cluster.scheduler_info()["workers"]) == 2


def test_embed_lazily_read_sparse_x_equals_in_memory(model, cluster, tmp_path):
    from scipy import sparse

    adata = _data(400)
    adata.X = sparse.csr_matrix(np.where(adata.X > 1.5, adata.X, 0).astype(np.float32))
    expected = mmc.tl.embed(adata, model, use_rep="X", copy=True).obsm["X_mmc"]
    adata.write_h5ad(tmp_path / "a.h5ad")
    with h5py.File(tmp_path / "a.h5ad") as f:
        X = ad.experimental.read_elem_lazy(f["X"], chunks=(128, 30))
        lazy = ad.AnnData(X=X, obs=adata.obs, var=adata.var)
        mmc.tl.embed(lazy, model, use_rep="X")
        np.testing.assert_array_equal(lazy.obsm["X_mmc"].compute(), expected)


def test_search_exact_on_dask_equals_in_memory(model, cluster):
    adata = _data()
    mmc.tl.embed(adata, model)
    queries = ["B cells", "T cells"]
    expected = mmc.tl.search(adata, model, queries, k=25, obs_filter={"tissue": "lung"})
    lazy = adata.copy()
    lazy.obsm["X_mmc"] = da.from_array(adata.obsm["X_mmc"], chunks=(64, -1))
    got = mmc.tl.search(lazy, model, queries, k=25, obs_filter={"tissue": "lung"})
    _same_hits(got, expected)
    like = mmc.tl.search_cells(lazy, adata.obs_names[:3], k=10)
    _same_hits(like, mmc.tl.search_cells(adata, adata.obs_names[:3], k=10))


def _same_hits(got, expected):
    """Same cells in the same order; scores equal up to float32 rounding (BLAS sums blocks of other shapes)."""
    assert got[["query", "rank", "obs_name"]].equals(expected[["query", "rank", "obs_name"]])
    np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-5, atol=1e-6)
