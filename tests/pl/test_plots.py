from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

import mmcontext as mmc
from mmcontext._validation import MMContextKeyError


@pytest.fixture
def queried(trained_model, pbmc_split):
    _, test = pbmc_split
    adata = test.copy()
    mmc.tl.embed(adata, trained_model)
    mmc.tl.query(adata, trained_model, ["natural killer cells", "monocytes"])
    return adata


def test_pl_query_one_and_many(queried):
    ax = mmc.pl.query(queried, "natural killer cells", show=False)
    assert ax.get_title() == "natural killer cells"
    axes = mmc.pl.query(queried, show=False)
    assert [a.get_title() for a in axes] == ["natural killer cells", "monocytes"]
    fig = mmc.pl.query(queried, "monocytes", show=False, return_fig=True)
    assert isinstance(fig, plt.Figure)
    plt.close("all")


def test_pl_query_errors_name_the_missing_thing(queried):
    # the documented error for a missing key: a KeyError and a ValueError at once
    with pytest.raises(MMContextKeyError, match="mmc_t_cells"):
        mmc.pl.query(queried, "T cells", show=False)
    with pytest.raises(KeyError, match="tsne"):
        mmc.pl.query(queried, "monocytes", basis="tsne", show=False)
    with pytest.raises(ValueError, match="mmc_label"):
        mmc.pl.annotate(queried, show=False)
    with pytest.raises(MMContextKeyError, match="mmc_label_scores"):
        mmc.pl.similarity(queried, "bulk_labels", show=False)


def test_pl_embedding_computes_joint_umap_once(queried):
    umap_before = queried.obsm["X_umap"].copy()
    ax = mmc.pl.embedding(queried, color="bulk_labels", show=False)
    assert ax is not None and "X_mmc_umap" in queried.obsm
    assert queried.obsm["X_mmc_umap"].shape == (queried.n_obs, 2)
    assert (queried.obsm["X_umap"] == umap_before).all()  # the user's UMAP is untouched
    plt.close("all")


def test_pl_training_draws_both_curves(trained_model):
    ax = mmc.pl.training(trained_model, show=False)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["training loss", "validation loss"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["training loss", "validation loss", "validation accuracy"]
    with pytest.raises(ValueError, match="no loss"):
        mmc.pl.training([], show=False)
    plt.close("all")
