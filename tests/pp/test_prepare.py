from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy import sparse

import mmcontext as mmc


def _snapshot(adata):
    return (
        adata.X.copy(),
        adata.obs.copy(),
        {k: np.array(v, copy=True) for k, v in adata.obsm.items()},
        set(adata.varm.keys()),
        copy.deepcopy(dict(adata.uns)).keys(),
    )


def _assert_unchanged(adata, snap):
    X, obs, obsm, varm, uns = snap
    np.testing.assert_array_equal(adata.X, X)
    assert adata.obs.equals(obs)
    assert set(adata.obsm) == set(obsm)
    for k, v in obsm.items():
        np.testing.assert_array_equal(adata.obsm[k], v)
    assert set(adata.varm) == varm
    assert adata.uns.keys() == uns


def test_bundled_pbmc_holds_log_normalised_expression(pbmc):
    import scanpy as sc

    shipped = sc.datasets.pbmc68k_reduced()
    assert pbmc.X.dtype == np.float32 and pbmc.X.min() >= 0  # log-normalised, not scaled
    np.testing.assert_allclose(pbmc.X, shipped.raw.X.toarray(), rtol=1e-6)
    np.testing.assert_array_equal(pbmc.layers["scaled"], shipped.X)
    np.testing.assert_array_equal(pbmc.obsm["X_pca"], shipped.obsm["X_pca"])
    assert list(pbmc.var_names) == list(shipped.var_names) and pbmc.raw is not None


def test_gene_panel_from_scaled_data_warns(pbmc, caplog):
    with caplog.at_level("WARNING", logger="mmcontext"):
        mmc.pp.prepare(pbmc, caption_keys=False)
    assert "negative values" not in caplog.text
    with caplog.at_level("WARNING", logger="mmcontext"):
        mmc.pp.prepare(pbmc, caption_keys=False, layer="scaled")
    assert "layers['scaled'] has negative values" in caplog.text and "log-normalised" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="mmcontext"):  # PCA of scaled data is fine
        mmc.pp.prepare(pbmc, caption_keys=False, layer="scaled", method="pca", n_components=10)
    assert "negative values" not in caplog.text


def test_prepare_default_gene_panel_and_captions(pbmc):
    mmc.pp.prepare(pbmc, caption_keys={"cell_type": "bulk_labels"})
    X = pbmc.obsm["X_mmc_init"]
    assert X.shape == (700, 765) and X.dtype == np.float32
    np.testing.assert_allclose(X, pbmc.X, rtol=0, atol=1e-6)  # the panel is the data itself
    caps = pbmc.obs["mmc_caption"]
    assert caps.notna().all()
    nk = caps[pbmc.obs["bulk_labels"] == "CD56+ NK"].iloc[0]
    assert "CD56+ NK" in nk and "natural killer cell" in nk
    prep = pbmc.uns["mmcontext"]["prepare"]
    assert prep["init_key"] == "X_mmc_init" and prep["method"] == "genes"
    assert len(prep["genes"]) == 765


def test_prepare_pca_matches_its_loadings(pbmc):
    mmc.pp.prepare(pbmc, method="pca", n_components=20, caption_keys=False)
    scores = pbmc.obsm["X_mmc_init"]
    assert scores.shape == (700, 20)
    load = pbmc.varm["mmc_pca_loadings"]
    mean = pbmc.uns["mmcontext"]["prepare"]["mean"]
    np.testing.assert_allclose((pbmc.X - mean) @ load, scores, atol=1e-3)
    assert np.all(np.diff(scores.var(axis=0)) <= 1e-4)  # components ordered by variance
    assert "mmc_caption" not in pbmc.obs


def test_prepare_sparse_pca_equals_dense(pbmc):
    dense = mmc.pp.prepare(pbmc, method="pca", n_components=10, caption_keys=False, copy=True)
    sp = pbmc.copy()
    sp.X = sparse.csr_matrix(sp.raw.X)  # log-normalised counts, sparse
    dn = pbmc.copy()
    dn.X = np.asarray(sp.X.toarray())
    a = mmc.pp.prepare(sp, method="pca", n_components=10, caption_keys=False, copy=True).obsm["X_mmc_init"]
    b = mmc.pp.prepare(dn, method="pca", n_components=10, caption_keys=False, copy=True).obsm["X_mmc_init"]
    np.testing.assert_allclose(np.abs(a[:, :5]), np.abs(b[:, :5]), atol=1e-2)  # leading components: same up to sign
    np.testing.assert_allclose(a.var(axis=0), b.var(axis=0), rtol=1e-3)  # same variance captured by every component
    assert dense.obsm["X_mmc_init"].shape == (700, 10)


def test_prepare_use_rep_records_key_without_copying(pbmc):
    mmc.pp.prepare(pbmc, use_rep="X_pca", caption_keys="bulk_labels")
    assert "X_mmc_init" not in pbmc.obsm
    assert pbmc.uns["mmcontext"]["prepare"]["init_key"] == "X_pca"


def test_prepare_copy_leaves_input_alone(pbmc):
    snap = _snapshot(pbmc)
    out = mmc.pp.prepare(pbmc, caption_keys="bulk_labels", copy=True)
    _assert_unchanged(pbmc, snap)
    assert "X_mmc_init" in out.obsm


def test_prepare_gene_panel_fills_missing_genes(pbmc):
    panel = [*pbmc.var_names[:5], "NOT_A_GENE"]
    mmc.pp.prepare(pbmc, genes=panel, caption_keys=False)
    X = pbmc.obsm["X_mmc_init"]
    assert X.shape == (700, 6)
    assert np.all(X[:, 5] == 0)
    assert pbmc.uns["mmcontext"]["prepare"]["n_missing_genes"] == 1


@pytest.mark.parametrize(
    ("kwargs", "mutate", "error", "match"),
    [
        ({"use_rep": "X_pcaa"}, None, KeyError, "X_pca"),
        ({"caption_keys": {"cell_type": "bulk_label"}}, None, KeyError, "bulk_labels"),
        ({"caption_keys": {"celltype": "bulk_labels"}}, None, ValueError, "Unknown caption roles"),
        ({"method": "umap"}, None, ValueError, "method='umap'"),
        ({}, "nan", ValueError, "NaN"),
        ({"caption_keys": "bulk_labels"}, "allnan", ValueError, "only missing values"),
        ({"layer": "counts"}, None, KeyError, "layers"),
    ],
)
def test_prepare_bad_input_leaves_adata_unchanged(pbmc, kwargs, mutate, error, match):
    if mutate == "nan":
        pbmc.X[3, 4] = np.nan
    if mutate == "allnan":
        pbmc.obs["bulk_labels"] = np.nan
    snap = _snapshot(pbmc)
    with pytest.raises(error, match=match):
        mmc.pp.prepare(pbmc, **kwargs)
    _assert_unchanged(pbmc, snap)


def test_prepare_rejects_empty_and_views(pbmc):
    with pytest.raises(ValueError, match="0 cells"):
        mmc.pp.prepare(pbmc[:0].copy())
    with pytest.raises(ValueError, match="view"):
        mmc.pp.prepare(pbmc[:10])


def test_prepare_h5ad_round_trip(pbmc, tmp_path):
    mmc.pp.prepare(pbmc, method="pca", caption_keys="bulk_labels")
    pbmc.write_h5ad(tmp_path / "a.h5ad")
    import anndata as ad

    back = ad.read_h5ad(tmp_path / "a.h5ad")
    np.testing.assert_array_equal(back.obsm["X_mmc_init"], pbmc.obsm["X_mmc_init"])
    assert (back.obs["mmc_caption"] == pbmc.obs["mmc_caption"]).all()
    assert back.uns["mmcontext"]["prepare"]["init_key"] == "X_mmc_init"
