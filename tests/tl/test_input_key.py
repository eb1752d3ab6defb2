"""A model remembers the obsm key it was trained on and looks for it in fresh data, saying which key it used."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import mmcontext as mmc
from mmcontext.datasets import PBMC_LABEL_KEY


@pytest.fixture(scope="module")
def pca_model():
    adata = mmc.datasets.pbmc68k_reduced()
    mmc.pp.prepare(adata, use_rep="X_pca", caption_keys={"cell_type": PBMC_LABEL_KEY})
    return mmc.tl.train(adata, epochs=1, seed=0)


def test_fresh_anndata_is_embedded_from_the_models_obsm_key(pca_model, caplog, tmp_path):
    fresh = mmc.datasets.pbmc68k_reduced()  # not prepared: has obsm['X_pca'], no 'X_mmc_init'
    assert "X_mmc_init" not in fresh.obsm and "X_pca" in fresh.obsm
    with caplog.at_level(logging.INFO, logger="mmcontext"):
        mmc.tl.embed(fresh, pca_model)
    assert "added 'X_mmc' (adata.obsm)" in caplog.text and "embedded from adata.obsm['X_pca']" in caplog.text
    assert fresh.uns["mmcontext"]["embed"]["use_rep"] == "X_pca"
    np.testing.assert_allclose(fresh.obsm["X_mmc"], pca_model.encode_cells(fresh.obsm["X_pca"]), atol=1e-6)
    # a saved and loaded model remembers it too; query says where its cells came from
    mmc.models.save_model(pca_model, tmp_path / "m")
    loaded = mmc.models.load(tmp_path / "m")
    other = mmc.datasets.pbmc68k_reduced()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mmcontext"):
        mmc.tl.query(other, loaded, "B cells", expand=None, markers=False)
    assert "embedded 700 cells from adata.obsm['X_pca']" in caplog.text
    np.testing.assert_allclose(
        other.obs["mmc_b_cells"], fresh.obsm["X_mmc"] @ loaded.encode_text(["B cells"])[0], atol=1e-5
    )


def test_missing_model_key_names_it(pca_model):
    fresh = mmc.datasets.pbmc68k_reduced()
    del fresh.obsm["X_pca"]
    with pytest.raises(KeyError, match=r"adata.obsm\['X_pca'\] not found: the model was trained on") as err:
        mmc.tl.embed(fresh, pca_model)
    assert "use_rep=" in str(err.value)
