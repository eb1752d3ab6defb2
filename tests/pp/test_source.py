"""Reading scanpy-processed data right: raw behind a scaled X, counts log-normalised on request."""

from __future__ import annotations

import numpy as np
import pytest
import scanpy as sc
from conftest import make_adata

import mmcontext as mmc
from mmcontext.pp._source import expression_source, lognormalise


def test_scanpy_pbmc_reads_raw_and_matches_the_lognormalised_copy(caplog):
    scanpy_own = sc.datasets.pbmc68k_reduced()  # X scaled, raw log-normalised
    lognorm = mmc.datasets.pbmc68k_reduced()
    with caplog.at_level("INFO", logger="mmcontext"):
        mmc.pp.prepare(scanpy_own, caption_keys={"cell_type": "bulk_labels"})
    assert "looks scaled" in caplog.text and "adata.raw.X" in caplog.text
    assert "negative values" not in caplog.text.split("looks scaled")[0]  # no scaled-input warning
    mmc.pp.prepare(lognorm, caption_keys={"cell_type": "bulk_labels"})
    np.testing.assert_array_equal(scanpy_own.obsm["X_mmc_init"], lognorm.obsm["X_mmc_init"])
    prep = scanpy_own.uns["mmcontext"]["prepare"]
    assert prep["source"] == "adata.raw.X" and prep["used_raw"] and not prep["normalize"]
    assert lognorm.uns["mmcontext"]["prepare"]["source"] == "adata.X"
    assert not lognorm.uns["mmcontext"]["prepare"]["used_raw"]


def test_raw_with_more_genes_uses_the_genes_of_x_as_panel():
    full = mmc.datasets.pbmc68k_reduced()
    sub = full[:, :300].copy()
    sub.raw = full  # raw keeps all 765 genes
    sc.pp.scale(sub)
    mmc.pp.prepare(sub, caption_keys=False)
    assert sub.obsm["X_mmc_init"].shape == (full.n_obs, 300)
    np.testing.assert_allclose(sub.obsm["X_mmc_init"], full.X[:, :300], atol=1e-6)


def test_scaled_x_without_raw_keeps_its_warning(caplog):
    adata = mmc.datasets.pbmc68k_reduced()
    adata.X = adata.layers["scaled"]
    adata.raw = None
    with caplog.at_level("WARNING", logger="mmcontext"):
        mmc.pp.prepare(adata, caption_keys=False)
    assert "looks scaled (sc.pp.scale)" in caplog.text
    assert adata.uns["mmcontext"]["prepare"]["source"] == "adata.X"


def _counts(seed=0):
    adata = make_adata(50, 30, seed=seed)
    rng = np.random.default_rng(seed)
    adata.X = rng.poisson(5.0, size=adata.shape).astype(np.float32) * (1 + (np.arange(30) % 7))
    return adata


def test_counts_are_an_error_that_names_normalize():
    adata = _counts()
    with pytest.raises(ValueError, match="normalize=True"):
        mmc.pp.prepare(adata, caption_keys=False)


def test_normalize_true_lognormalises_counts_like_scanpy():
    adata = _counts()
    expected = adata.copy()
    sc.pp.normalize_total(expected, target_sum=1e4)
    sc.pp.log1p(expected)
    mmc.pp.prepare(adata, caption_keys=False, normalize=True)
    np.testing.assert_allclose(adata.obsm["X_mmc_init"], expected.X, rtol=1e-5, atol=1e-5)
    assert adata.uns["mmcontext"]["prepare"]["normalize"]
    assert adata.X.max() > 20  # the counts themselves are untouched


def test_normalize_true_on_lognormalised_data_is_an_error():
    adata = mmc.datasets.pbmc68k_reduced()
    with pytest.raises(ValueError, match="raw counts"):
        mmc.pp.prepare(adata, caption_keys=False, normalize=True)


def test_lognormalise_sparse_equals_dense():
    from scipy import sparse

    X = _counts().X
    np.testing.assert_allclose(lognormalise(sparse.csr_matrix(X)).toarray(), lognormalise(X), rtol=1e-6)


def test_a_layer_is_never_replaced_by_raw():
    adata = sc.datasets.pbmc68k_reduced()
    adata.layers["mine"] = adata.raw.X.toarray()
    src = expression_source(adata, "mine")
    assert src.what == "adata.layers['mine']" and not src.used_raw


def test_reference_and_streamed_embed_read_raw(trained_model, pbmc_split):
    _, test = pbmc_split
    scanpy_own = sc.datasets.pbmc68k_reduced()
    keep = scanpy_own.obs_names.isin(test.obs_names)
    scanpy_own = scanpy_own[keep].copy()
    ref = mmc.pp.prepare(scanpy_own, reference=trained_model, caption_keys=False, copy=True)
    assert ref.uns["mmcontext"]["prepare"]["used_raw"]
    np.testing.assert_allclose(ref.obsm["X_mmc_init"], test[scanpy_own.obs_names].obsm["X_mmc_init"], atol=1e-6)
    mmc.tl.embed(scanpy_own, trained_model, use_rep="X")
    assert scanpy_own.uns["mmcontext"]["embed"]["source"] == "adata.raw.X"
    expected = trained_model.encode_cells(test[scanpy_own.obs_names].obsm["X_mmc_init"])
    np.testing.assert_allclose(scanpy_own.obsm["X_mmc"], expected, atol=1e-5)


def test_streamed_embed_normalises_counts(trained_model):
    genes = list(trained_model.omics_encoder.input_arrays["genes"])
    import anndata as ad

    rng = np.random.default_rng(1)
    X = rng.poisson(3.0, size=(20, len(genes))).astype(np.float32)
    counts = ad.AnnData(X)
    counts.var_names = genes
    mmc.tl.embed(counts, trained_model, use_rep="X", normalize=True, chunk_size=7)
    expected = trained_model.encode_cells(lognormalise(X))
    np.testing.assert_allclose(counts.obsm["X_mmc"], expected, atol=1e-5)
    assert counts.uns["mmcontext"]["embed"]["normalize"]
