"""Marker-gene grounding of names in tl.query / tl.annotate / tl.label_query, its explanation and its plot."""

from __future__ import annotations

import anndata as ad
import matplotlib
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import mmcontext as mmc
from mmcontext.tl._grounding import MARKER_WEIGHT, Z_CLIP, marker_evidence

NK = "natural killer cells"


@pytest.fixture
def test_cells(pbmc_split):
    return pbmc_split[1].copy()


def test_query_adds_weighted_marker_evidence_and_explains_it(trained_model, test_cells):
    text = mmc.tl.query(test_cells, trained_model, [NK, "monocytes"], markers=False, copy=True)
    assert "mmc_natural_killer_cells_markers" not in text.obs and "markers" not in text.uns["mmcontext"]
    mmc.tl.query(test_cells, trained_model, [NK, "monocytes"])
    key = "mmc_natural_killer_cells"
    ev = test_cells.obs[f"{key}_markers"].to_numpy()
    np.testing.assert_allclose(test_cells.obs[key], text.obs[key] + MARKER_WEIGHT * ev, atol=1e-5)
    info = test_cells.uns["mmcontext"]["markers"][key]
    assert info["term_id"] == "CL:0000623" and info["markers_from"] == "natural killer cell"
    assert {"GNLY", "NKG7", "PRF1"} <= set(info["genes"])
    assert "NCAM1" in info["missing_genes"]  # not in pbmc68k_reduced's 765 genes
    assert "gene panel" in info["read_from"] and info["weight"] == MARKER_WEIGHT
    assert len(info["gene_z_top"]) == len(info["genes"])
    # the evidence alone finds NK cells: it is the marker genes' expression
    truth = test_cells.obs["bulk_labels"].astype(str).to_numpy() == "CD56+ NK"
    assert roc_auc_score(truth, ev) > 0.9
    assert test_cells.uns["mmcontext"]["query"]["markers"]


def test_evidence_depends_on_each_cell_only(trained_model, test_cells):
    full = marker_evidence(test_cells, trained_model, [NK]).scores
    part = marker_evidence(test_cells[::3].copy(), trained_model, [NK]).scores
    np.testing.assert_allclose(part, full[::3], atol=1e-6)
    assert np.abs(full).max() <= Z_CLIP


def test_user_markers_and_switch_off(trained_model, test_cells):
    mmc.tl.query(test_cells, trained_model, ["my cells"], markers={"my cells": ["LYZ", "NOT_A_GENE"]})
    info = test_cells.uns["mmcontext"]["markers"]["mmc_my_cells"]
    assert info["genes"] == ["LYZ"] and info["missing_genes"] == ["NOT_A_GENE"] and info["source"] == "user"
    a = mmc.tl.query(test_cells, trained_model, [NK], marker_weight=0.0, copy=True)
    b = mmc.tl.query(test_cells, trained_model, [NK], markers=False, copy=True)
    np.testing.assert_array_equal(a.obs["mmc_natural_killer_cells"], b.obs["mmc_natural_killer_cells"])
    with pytest.raises(ValueError, match="marker_weight"):
        mmc.tl.query(test_cells, trained_model, [NK], marker_weight=-1)


def test_a_name_without_genes_in_the_data_gets_no_marker_column(trained_model, test_cells):
    mmc.tl.query(test_cells, trained_model, ["my cells"], markers={"my cells": ["LYZ"]})
    assert "mmc_my_cells_markers" in test_cells.obs
    # the same key again, now with markers the data lacks: its earlier column goes, the explanation says why
    mmc.tl.query(test_cells, trained_model, ["my cells"], markers={"my cells": ["NOT_A_GENE"]})
    assert "mmc_my_cells_markers" not in test_cells.obs
    info = test_cells.uns["mmcontext"]["markers"]["mmc_my_cells"]
    assert info["genes"] == [] and info["missing_genes"] == ["NOT_A_GENE"]
    plain = mmc.tl.query(test_cells, trained_model, ["my cells"], markers=False, copy=True)
    np.testing.assert_array_equal(test_cells.obs["mmc_my_cells"], plain.obs["mmc_my_cells"])


def test_pca_input_reconstructs_genes_from_loadings(pbmc_split):
    train, test = (a.copy() for a in pbmc_split)
    mmc.pp.prepare(train, method="pca", n_components=40, caption_keys={"cell_type": "bulk_labels"})
    model = mmc.tl.train(train, epochs=1, seed=0)
    mmc.pp.prepare(test, reference=model, caption_keys=False)
    ev = marker_evidence(test, model, [NK])
    assert "PCA reconstruction" in ev.explain[0]["read_from"]
    # the reconstruction tracks the measured expression of the same genes
    genes = ev.explain[0]["genes"]
    direct = test[:, genes].X
    direct = ((direct - direct.mean(0)) / direct.std(0)).mean(axis=1)
    assert np.corrcoef(ev.scores[:, 0], direct)[0, 1] > 0.8


def test_obsm_without_gene_space_reads_expression(trained_model, test_cells):
    test_cells.obsm["X_other"] = test_cells.obsm["X_mmc_init"]
    ev = marker_evidence(test_cells, trained_model, [NK], use_rep="X")
    assert "adata.X by gene name" in ev.explain[0]["read_from"]
    assert ev.scores.shape == (test_cells.n_obs, 1) and ev.scores.std() > 0


def test_anndata_without_genes_gives_no_marker_evidence(trained_model, test_cells):
    """Neither a gene space in obsm nor expression (an AnnData holding only an embedding): no evidence, no error."""
    bare = ad.AnnData(obs=test_cells.obs[[]].copy())
    bare.obsm["X_mmc_init"] = test_cells.obsm["X_mmc_init"]
    ev = marker_evidence(bare, trained_model, [NK], use_rep="X")  # read genes from expression, which it lacks
    assert ev is not None and ev.scores.shape == (bare.n_obs, 1) and not ev.scores.any()
    assert "no expression" in ev.explain[0]["read_from"]
    with_panel = marker_evidence(bare, trained_model, [NK])  # the model's gene panel in obsm still grounds
    assert with_panel.scores.std() > 0


def test_annotate_and_label_query_with_markers_write_h5ad(trained_model, test_cells, tmp_path):
    labels = list(test_cells.obs["bulk_labels"].cat.categories)
    plain = mmc.tl.annotate(test_cells, trained_model, labels, copy=True)
    assert "mmc_label_markers" not in plain.obsm  # off by default in annotate
    mmc.tl.annotate(test_cells, trained_model, labels, markers=True)
    from mmcontext._frames import h5_safe_names, read_frame

    assert list(test_cells.obsm["mmc_label_markers"].columns) == h5_safe_names(labels)  # no '/' for h5ad
    ev = read_frame(test_cells, "mmc_label_markers")  # the labels as given
    assert list(ev.columns) == labels
    nk = test_cells.obs["bulk_labels"] == "CD56+ NK"
    assert ev.loc[nk.to_numpy(), "CD56+ NK"].mean() > ev.loc[~nk.to_numpy(), "CD56+ NK"].mean() + 0.5
    expl = test_cells.uns["mmcontext"]["annotate"]["markers"][str(labels.index("CD56+ NK"))]
    assert expl["text"] == "CD56+ NK"
    assert expl["term_name"].startswith("CD16-positive") and "FCGR3A" in expl["name_genes"]
    mmc.tl.label_query(test_cells, trained_model, [NK], labels=labels, markers=True)
    assert "mmc_natural_killer_cells_markers" in test_cells.obs
    path = tmp_path / "g.h5ad"
    test_cells.write_h5ad(path)
    back = ad.read_h5ad(path)
    assert back.uns["mmcontext"]["annotate"]["markers"]["0"]["text"] == labels[0]
    assert list(back.uns["mmcontext"]["markers"]["mmc_natural_killer_cells"]["genes"]) == list(
        test_cells.uns["mmcontext"]["markers"]["mmc_natural_killer_cells"]["genes"]
    )


def test_pl_markers_shows_the_genes(trained_model, test_cells):
    mmc.tl.query(test_cells, trained_model, [NK, "B cells"])
    ax = mmc.pl.markers(test_cells, NK, show=False)
    assert "natural killer cell" in ax.get_title()
    shown = [t.get_text() for t in ax.get_yticklabels()]
    assert shown == list(test_cells.uns["mmcontext"]["markers"]["mmc_natural_killer_cells"]["genes"])
    axes = mmc.pl.markers(test_cells, show=False)
    assert len(axes) == 2
    fig = mmc.pl.markers(test_cells, "B cells", show=False, return_fig=True)
    assert isinstance(fig, plt.Figure)
    with pytest.raises(KeyError, match="No marker explanation"):
        mmc.pl.markers(test_cells, "plasma cells", show=False)
    plt.close("all")


def test_combined_evidence_is_summarised_as_read_and_not_kept(trained_model, test_cells):
    names = [NK, "B cells"]
    base = np.random.default_rng(0).random((test_cells.n_obs, 2)).astype(np.float32)
    kept = marker_evidence(test_cells, trained_model, names)
    kept.summarise(base + 0.05 * kept.scores)
    streamed = marker_evidence(test_cells, trained_model, names, combine=(base, 0.05))
    np.testing.assert_array_equal(streamed.scores, kept.scores)
    assert all(z.shape[0] == 0 for z in streamed.per_gene)  # no cells x genes values held per name
    for a, b in zip(kept.explain, streamed.explain, strict=True):
        assert a["genes"] and a["gene_z_top"] == b["gene_z_top"] and a["gene_z_all"] == b["gene_z_all"]
