"""Reproducibility: same seed -> same model and embeddings; embeddings independent of batching; provenance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_adata
from scipy import sparse

import mmcontext as mmc

OPTS = {"epochs": 2, "batch_size": 8, "hidden_dim": 32, "n_layers": 1, "validation_split": 0.2}


def _data():
    adata = make_adata(60, 20, seed=2)
    mmc.pp.prepare(adata, caption_keys={"cell_type": "cell_type"}, ontology=False)
    return adata


@pytest.fixture(scope="module")
def models():
    return {name: mmc.tl.train(_data(), seed=seed, **OPTS) for name, seed in (("a", 0), ("b", 0), ("c", 1))}


def test_same_seed_same_weights_other_seed_differs(models):
    a, b, c = (models[k].state_dict() for k in "abc")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    omics = [n for n in a if ".omics." in n and n.endswith("weight")]
    assert omics and any(not torch.equal(a[n], c[n]) for n in omics)


def test_same_seed_same_embeddings_and_fingerprint(models):
    x, y = _data(), _data()
    mmc.tl.embed(x, models["a"])
    mmc.tl.embed(y, models["b"])
    np.testing.assert_array_equal(x.obsm["X_mmc"], y.obsm["X_mmc"])
    fx, fy = (d.uns["mmcontext"]["embed"]["model_fingerprint"] for d in (x, y))
    assert fx == fy
    z = _data()
    mmc.tl.embed(z, models["c"])
    assert z.uns["mmcontext"]["embed"]["model_fingerprint"] != fx


def test_embedding_independent_of_batch_size_and_other_cells(models):
    adata = _data()
    mmc.tl.embed(adata, models["a"])
    full = adata.obsm["X_mmc"].copy()
    for bs in (1, 3, 17, 1000):
        again = mmc.tl.embed(adata, models["a"], batch_size=bs, copy=True)
        np.testing.assert_array_equal(again.obsm["X_mmc"], full)
    idx = np.array([5, 41, 2])
    sub = adata[idx].copy()
    mmc.tl.embed(sub, models["a"])
    np.testing.assert_array_equal(sub.obsm["X_mmc"], full[idx])
    alone = adata[[41]].copy()
    mmc.tl.embed(alone, models["a"])
    np.testing.assert_array_equal(alone.obsm["X_mmc"][0], full[41])


def test_query_scores_independent_of_other_cells(models):
    adata = _data()
    mmc.tl.query(adata, models["a"], ["B cell", "monocyte"])
    sub = adata[10:14].copy()
    mmc.tl.query(sub, models["a"], ["B cell", "monocyte"])
    np.testing.assert_array_equal(sub.obs["mmc_b_cell"].to_numpy(), adata.obs["mmc_b_cell"].to_numpy()[10:14])


@pytest.mark.parametrize("as_sparse", [False, True])
def test_prepare_pca_is_deterministic(as_sparse):
    def run(seed):
        adata = make_adata(50, 40, seed=4)
        adata.X = np.abs(adata.X)
        if as_sparse:
            adata.X = sparse.csr_matrix(adata.X)
        mmc.pp.prepare(adata, method="pca", n_components=5, caption_keys=False, seed=seed)
        return adata.obsm["X_mmc_init"]

    np.testing.assert_array_equal(run(0), run(0))


def test_build_dataset_is_deterministic(tmp_path):
    def run(seed, folder):
        return mmc.pp.build_dataset(_data(), tmp_path / folder, seed=seed, n_negatives=1)

    a, b, c = run(0, "a"), run(0, "b"), run(5, "c")
    assert a.keys() == b.keys()
    for split in a:
        assert a[split].to_dict() == b[split].to_dict()
    assert any(a[s].to_dict() != c[s].to_dict() for s in a)


def test_provenance_traces_and_recreates(models, tmp_path):
    path = tmp_path / "model"
    mmc.models.save_model(models["a"], path)
    adata = _data()
    loaded = mmc.models.load(path)
    mmc.tl.embed(adata, loaded)
    mmc.tl.query(adata, loaded, "T cell")
    prov = adata.uns["mmcontext"]
    for step in ("prepare", "embed", "query"):
        assert {"versions", "time"} <= set(prov[step]), step
        assert {"mmcontext", "sentence-transformers", "torch", "anndata", "numpy"} <= set(prov[step]["versions"])
        assert prov[step]["versions"]["torch"] == torch.__version__
    assert len(prov["query"]["text_fingerprint"]) == 16 and len(prov["embed"]["model_fingerprint"]) == 16
    assert prov["embed"]["model"] == str(path.resolve())
    assert prov["prepare"]["seed"] == 0 and prov["prepare"]["init_key"] == "X_mmc_init"
    # re-create the embedding from nothing but the provenance record
    again = _data()
    mmc.tl.embed(
        again,
        mmc.models.load(prov["embed"]["model"]),
        use_rep=prov["embed"]["use_rep"],
        key_added=prov["embed"]["key_added"],
    )
    np.testing.assert_array_equal(again.obsm["X_mmc"], adata.obsm["X_mmc"])
    assert again.uns["mmcontext"]["embed"]["model_fingerprint"] == prov["embed"]["model_fingerprint"]
    # the record survives h5ad
    adata.write_h5ad(tmp_path / "a.h5ad")
    import anndata as ad

    back = ad.read_h5ad(tmp_path / "a.h5ad")
    assert back.uns["mmcontext"]["embed"]["model_fingerprint"] == prov["embed"]["model_fingerprint"]
