"""pp.prepare(reference=...): new data projected into a model's gene panel / PCA space by gene name."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
from conftest import make_adata

import mmcontext as mmc
from mmcontext.pp._reference import space_from_model


def _shuffled(adata, seed=0, keep=1.0):
    rng = np.random.default_rng(seed)
    idx = rng.permutation(adata.n_vars)[: round(keep * adata.n_vars)]
    return adata[:, rng.permutation(idx)].copy()


def test_pca_reference_adata_reproduces_scores_with_shuffled_genes():
    ref = make_adata(60, 30)
    mmc.pp.prepare(ref, method="pca", n_components=5, caption_keys=False)
    new = _shuffled(make_adata(60, 30))
    out = mmc.pp.prepare(new, reference=ref, caption_keys=False, copy=True)
    np.testing.assert_allclose(out.obsm["X_mmc_init"], ref.obsm["X_mmc_init"], atol=1e-4)
    prep = out.uns["mmcontext"]["prepare"]
    assert prep["method"] == "pca" and prep["n_missing_genes"] == 0 and prep["reference"]


def test_missing_genes_filled_with_reference_mean_or_zero(caplog):
    ref = make_adata(60, 30)
    mmc.pp.prepare(ref, method="genes", caption_keys=False)
    new = make_adata(60, 30)[:, 3:].copy()  # gene0..gene2 missing
    with caplog.at_level("WARNING", logger="mmcontext"):
        out = mmc.pp.prepare(new, reference=ref, caption_keys=False, copy=True)
    assert "3 of 30 reference genes" in caplog.text
    X = out.obsm["X_mmc_init"]
    assert X.shape == (60, 30)
    np.testing.assert_allclose(X[:, :3], np.broadcast_to(ref.X[:, :3].mean(axis=0), (60, 3)), atol=1e-5)
    np.testing.assert_allclose(X[:, 3:], ref.X[:, 3:])
    zero = mmc.pp.prepare(new, reference=ref, caption_keys=False, fill="zero", copy=True)
    assert np.all(zero.obsm["X_mmc_init"][:, :3] == 0)
    assert out.uns["mmcontext"]["prepare"]["n_missing_genes"] == 3


def test_reference_errors_leave_adata_unchanged():
    ref = make_adata()
    mmc.pp.prepare(ref, use_rep=None, method="pca", n_components=4, caption_keys=False)
    other = make_adata()
    other.var_names = [f"ENSG{i}" for i in range(other.n_vars)]
    before = other.copy()
    with pytest.raises(ValueError, match="None of the reference's 30 genes"):
        mmc.pp.prepare(other, reference=ref, caption_keys=False)
    with pytest.raises(ValueError, match="not one of 'mean', 'zero'"):
        mmc.pp.prepare(make_adata(), reference=ref, caption_keys=False, fill="median")
    with pytest.raises(TypeError, match="MMContextEncoder or a prepared AnnData"):
        mmc.pp.prepare(other, reference="model", caption_keys=False)
    unprepared = make_adata()
    with pytest.raises(ValueError, match="no gene-based initial embedding"):
        mmc.pp.prepare(other, reference=unprepared, caption_keys=False)
    assert list(other.obsm.keys()) == list(before.obsm.keys()) and "mmcontext" not in other.uns


def test_reference_result_writes_h5ad(tmp_path):
    ref = make_adata()
    mmc.pp.prepare(ref, method="pca", n_components=4, caption_keys=False)
    new = _shuffled(make_adata(), keep=0.9)
    mmc.pp.prepare(new, reference=ref, caption_keys={"cell_type": "cell_type"}, ontology=False)
    new.write_h5ad(tmp_path / "new.h5ad")
    back = ad.read_h5ad(tmp_path / "new.h5ad")
    np.testing.assert_array_equal(back.obsm["X_mmc_init"], new.obsm["X_mmc_init"])
    assert back.uns["mmcontext"]["prepare"]["n_missing_genes"] == 3


def _labels_on(model, test, labels, **kw):
    new = test.copy()
    mmc.pp.prepare(new, reference=model, caption_keys=False, **kw)
    mmc.tl.annotate(new, model, labels)
    return new


def test_trained_gene_panel_model_answers_on_shuffled_and_reduced_genes(trained_model, pbmc_split):
    """The issue's check: same zero-shot label for >= 90% of cells with 10% genes removed, 100% shuffled."""
    space = space_from_model(trained_model)
    assert space is not None and space.method == "genes" and len(space.genes) == trained_model.input_dim
    _, test = pbmc_split
    raw = mmc.datasets.pbmc68k_reduced()[test.obs_names].copy()  # unprepared: only expression by gene name
    labels = list(test.obs["bulk_labels"].cat.categories)
    base = _labels_on(trained_model, raw, labels)
    # the projection of the untouched data is exactly the training representation
    np.testing.assert_array_equal(base.obsm["X_mmc_init"], test.obsm["X_mmc_init"])
    acc = (base.obs["mmc_label"].astype(str) == test.obs["bulk_labels"].astype(str)).mean()
    assert acc > 0.7
    shuffled = _labels_on(trained_model, _shuffled(raw, seed=1), labels)
    assert (shuffled.obs["mmc_label"] == base.obs["mmc_label"]).mean() == 1.0
    reduced = _labels_on(trained_model, _shuffled(raw, seed=2, keep=0.9), labels)
    assert reduced.uns["mmcontext"]["prepare"]["n_missing_genes"] == 77
    assert (reduced.obs["mmc_label"] == base.obs["mmc_label"]).mean() >= 0.9


def test_trained_pca_model_answers_on_shuffled_and_reduced_genes(tmp_path):
    adata = mmc.datasets.pbmc68k_reduced()
    mmc.pp.prepare(adata, method="pca", n_components=30, caption_keys={"cell_type": "bulk_labels"})
    train_idx, test_idx = mmc.datasets.pbmc_split(adata)
    model = mmc.tl.train(adata[train_idx].copy(), epochs=3, seed=0, validation_split=0)
    # the PCA loadings travel with the saved model
    model.save_pretrained(str(tmp_path / "m"))
    loaded = mmc.models.load(str(tmp_path / "m"))
    space = space_from_model(loaded)
    assert space.method == "pca" and space.loadings.shape == (adata.n_vars, 30)
    raw = mmc.datasets.pbmc68k_reduced()[test_idx].copy()
    labels = list(adata.obs["bulk_labels"].cat.categories)
    base = _labels_on(loaded, raw, labels)
    np.testing.assert_allclose(base.obsm["X_mmc_init"], adata.obsm["X_mmc_init"][test_idx], atol=1e-3)
    shuffled = _labels_on(loaded, _shuffled(raw, seed=1), labels)
    assert (shuffled.obs["mmc_label"] == base.obs["mmc_label"]).mean() == 1.0
    reduced = _labels_on(loaded, _shuffled(raw, seed=2, keep=0.9), labels)
    assert (reduced.obs["mmc_label"] == base.obs["mmc_label"]).mean() >= 0.9
