"""Which cells trained the model is recorded (also on the full AnnData); queries out of reach are flagged."""

from __future__ import annotations

import logging

import anndata as ad
import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import mmcontext as mmc
from mmcontext.datasets import PBMC_LABEL_KEY


@pytest.fixture
def full(trained_model):
    """All 700 prepared cells, of which the session model trained on the 560 of pbmc_split's training copy."""
    adata = mmc.datasets.pbmc68k_reduced()
    mmc.pp.prepare(adata, caption_keys={"cell_type": PBMC_LABEL_KEY})
    mmc.tl.embed(adata, trained_model)
    return adata


def test_train_marks_its_cells(trained_model, pbmc_split):
    train, _ = pbmc_split
    split = train.obs["mmc_split"]
    assert list(split.cat.categories) == ["train", "validation", "unseen"]
    counts = split.value_counts()
    assert counts["train"] == 504 and counts["validation"] == 56 and counts["unseen"] == 0
    rec = train.uns["mmcontext"]["train"]
    assert rec["split_key"] == "mmc_split" and rec["n_train"] == 504 and rec["n_validation"] == 56


def test_embed_marks_the_training_cells_in_the_full_anndata(full, pbmc_split, tmp_path):
    train, test = pbmc_split
    split = full.obs["mmc_split"]
    assert split.value_counts().to_dict() == {"train": 504, "validation": 56, "unseen": 140}
    assert (split[test.obs_names] == "unseen").all()
    assert (split[train.obs_names].astype(str) == train.obs["mmc_split"].astype(str)).all()
    rec = full.uns["mmcontext"]["train"]
    assert rec["n_train"] == 504 and rec["n_unseen"] == 140 and rec["epochs"] == 10
    full.write_h5ad(tmp_path / "a.h5ad")
    assert ad.read_h5ad(tmp_path / "a.h5ad").obs["mmc_split"].value_counts()["unseen"] == 140


def test_other_data_is_not_marked(trained_model, pbmc_split):
    _, test = pbmc_split
    other = test.copy()  # holds none of the training cells
    mmc.tl.embed(other, trained_model)
    assert "mmc_split" not in other.obs


def test_plots_ring_the_held_out_cells(full):
    ax = mmc.pl.embedding(full, color=PBMC_LABEL_KEY, show=False)
    rings = [c for c in ax.collections if len(c.get_offsets()) == 196 and not len(c.get_facecolors())]
    assert len(rings) == 1  # 56 validation + 140 unseen cells, hollow
    assert any("196 held-out cells" in t.get_text() for t in ax.texts)
    plt.close("all")
    ax = mmc.pl.embedding(full, color=PBMC_LABEL_KEY, mark_heldout=False, show=False)
    assert not ax.texts
    plt.close("all")


def test_query_colour_bars_are_labelled_and_share_one_scale(full, trained_model):
    mmc.tl.query(full, trained_model, ["natural killer cells", "antibody-secreting cells"])
    fig = mmc.pl.query(full, basis="mmc_umap" if "X_mmc_umap" in full.obsm else "umap", show=False, return_fig=True)
    panels = [a for a in fig.axes if a.get_title()]
    clims = [a.collections[0].get_clim() for a in panels]
    assert len(panels) == 2 and clims[0] == clims[1]
    lo, hi = clims[0]
    assert lo == pytest.approx(full.obs[["mmc_natural_killer_cells", "mmc_antibody_secreting_cells"]].min().min())
    assert hi == pytest.approx(full.obs["mmc_natural_killer_cells"].max())
    assert [a.collections[0].colorbar.ax.get_ylabel() for a in panels] == ["cosine similarity"] * 2
    plt.close("all")
    fig = mmc.pl.query(full, scale="each", show=False, return_fig=True)
    clims = [a.collections[0].get_clim() for a in fig.axes if a.get_title()]
    assert clims[0] != clims[1]
    plt.close("all")


def test_query_far_from_training_is_warned_in_log_and_uns(full, trained_model, caplog):
    with caplog.at_level(logging.WARNING, logger="mmcontext"):
        mmc.tl.query(full, trained_model, ["CD56+ NK", "the weather in Paris tomorrow"], expand=None)
    per = full.uns["mmcontext"]["query"]["per_query"]
    near, far = per["mmc_cd56_nk"], per["mmc_the_weather_in_paris_tomorrow"]
    assert not near["far"]
    assert bool(far["far"]) and far["best_similarity"] < far["caption_floor"]
    assert near["best_similarity"] > near["caption_floor"]
    assert near["text"] == "CD56+ NK" and near["score"] == "cosine similarity"
    assert "'the weather in Paris tomorrow' is far from everything the model was trained on" in caplog.text
    assert "CD56+ NK" not in caplog.text
    floor = far["caption_floor"]
    assert 0.3 < floor < 0.9 and near["caption_floor"] == floor
    ax = mmc.pl.query(full, "the weather in Paris tomorrow", show=False)
    assert ax.get_title() == "the weather in Paris tomorrow (far from training)"
    plt.close("all")


def test_query_records_the_text_actually_embedded(full, trained_model):
    mmc.tl.query(full, trained_model, ["monocytes", "cells with high mitochondrial content"])
    per = full.uns["mmcontext"]["query"]["per_query"]
    assert per["mmc_monocytes"]["text"].startswith("A monocytes, a monocyte")  # the ontology phrasing
    assert per["mmc_cells_with_high_mitochondrial_content"]["text"] == "cells with high mitochondrial content"
    mmc.tl.query(full, trained_model, "monocytes", expand=None)
    assert full.uns["mmcontext"]["query"]["per_query"]["mmc_monocytes"]["text"] == "monocytes"
    assert "mmc_cells_with_high_mitochondrial_content" in full.uns["mmcontext"]["query"]["per_query"]


def test_many_far_queries_are_one_warning(full, trained_model, caplog):
    far = ["the weather in Paris tomorrow", "a recipe for apple pie", "stock prices in 1999", "how to tie a knot"]
    with caplog.at_level(logging.WARNING, logger="mmcontext"):
        mmc.tl.query(full, trained_model, ["CD56+ NK", *far], expand=None, copy=True)
    warned = [r for r in caplog.records if "far from everything" in r.getMessage()]
    assert len(warned) == 1
    message = warned[0].getMessage()
    assert message.startswith("4 of 5 queries are far from everything") and "'a recipe for apple pie'" in message
    assert "how to tie a knot" not in message and message.count("(0.") == 3  # three named, then "..."
