"""pl.annotate, pl.similarity, pl.evaluate: what they draw, what they return, and their errors."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import mmcontext as mmc
from mmcontext.datasets import PBMC_LABEL_KEY, PBMC_QUERIES
from mmcontext.pl._similarity import similarity_table


@pytest.fixture(scope="module")
def annotated(pbmc_split, trained_model):
    adata = pbmc_split[1].copy()
    mmc.tl.annotate(adata, trained_model, PBMC_LABEL_KEY)
    mmc.tl.query(adata, trained_model, list(PBMC_QUERIES))
    return adata


def test_pl_annotate(annotated):
    axes = mmc.pl.annotate(annotated, show=False)
    assert [a.get_title() for a in axes] == ["mmc_label", "mmc_label margin"]
    fig, ax = plt.subplots()
    out = mmc.pl.annotate(annotated, confidence=None, ax=ax, show=False)
    assert out is ax and ax.get_title() == "mmc_label"
    fig = mmc.pl.annotate(annotated, confidence="score", show=False, return_fig=True)
    assert isinstance(fig, plt.Figure) and fig.axes[1].get_title() == "mmc_label score"
    axes = mmc.pl.annotate(annotated, confidence="probability", show=False)
    assert axes[1].get_title() == "mmc_label probability"
    plain = annotated.copy()
    del plain.obs["mmc_label_probability"]
    with pytest.raises(KeyError, match="validation cells"):
        mmc.pl.annotate(plain, confidence="probability", show=False)
    with pytest.raises(ValueError, match="one panel"):
        mmc.pl.annotate(annotated, ax=ax, show=False)
    with pytest.raises(KeyError, match=r"mmc\.tl\.annotate"):
        mmc.pl.annotate(annotated, "other_label", show=False)
    with pytest.raises(ValueError, match="confidence"):
        mmc.pl.annotate(annotated, confidence="entropy", show=False)
    plt.close("all")


def test_pl_similarity(annotated):
    raw = similarity_table(annotated, PBMC_LABEL_KEY, standard_scale=None)
    labels = list(annotated.obs[PBMC_LABEL_KEY].cat.categories)
    assert list(raw.index) == labels and list(raw.columns) == labels
    mask = annotated.obs[PBMC_LABEL_KEY] == "CD19+ B"
    expected = annotated.obsm["mmc_label_scores"].loc[mask, "CD56+ NK"].mean()
    assert raw.loc["CD19+ B", "CD56+ NK"] == pytest.approx(expected)
    # the diagonal wins for the well-separated types
    for label in ["CD19+ B", "CD14+ Monocyte", "CD56+ NK", "Dendritic", "CD34+"]:
        assert raw.loc[label].idxmax() == label
    scaled = similarity_table(annotated, PBMC_LABEL_KEY, standard_scale="group")
    np.testing.assert_allclose(scaled.max(axis=1), 1.0)
    np.testing.assert_allclose(scaled.min(axis=1), 0.0)
    ax = mmc.pl.similarity(annotated, PBMC_LABEL_KEY, labels=["CD19+ B", "CD56+ NK"], show=False)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["CD19+ B", "CD56+ NK"]
    assert len(ax.get_yticklabels()) == 10 and len(ax.texts) == 20
    fig = mmc.pl.similarity(annotated, PBMC_LABEL_KEY, annot=False, show=False, return_fig=True)
    assert isinstance(fig, plt.Figure)
    with pytest.raises(KeyError, match="leiden"):
        mmc.pl.similarity(annotated, "leiden", show=False)
    with pytest.raises(KeyError, match="nope"):
        mmc.pl.similarity(annotated, PBMC_LABEL_KEY, labels=["nope"], show=False)
    with pytest.raises(KeyError, match=r"mmc\.tl\.annotate"):
        mmc.pl.similarity(annotated, PBMC_LABEL_KEY, key="other", show=False)
    plt.close("all")


def test_pl_evaluate(annotated):
    res = mmc.tl.evaluate(annotated, label_key=PBMC_LABEL_KEY, queries=PBMC_QUERIES)
    ax = mmc.pl.evaluate(res, show=False)
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert names[:4] == ["accuracy", "balanced_accuracy", "macro_f1", "mcc"]
    assert "query auroc (mean)" in names and "label auroc (mean)" in names and "type_accuracy" in names
    widths = [p.get_width() for p in ax.patches]
    acc = res.query("metric == 'accuracy'")["value"].item()
    assert widths[0] == pytest.approx(acc)
    ax = mmc.pl.evaluate(res, metrics=["auroc"], subjects=list(PBMC_QUERIES)[:3], show=False)
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"query auroc ({q})" for q in list(PBMC_QUERIES)[:3]]
    fig = mmc.pl.evaluate(
        {"mmcontext": res, "baseline": res.assign(value=res["value"] / 2)},
        metrics=["accuracy", "macro_f1", "type_accuracy"],
        show=False,
        return_fig=True,
    )
    ax = fig.axes[0]
    # one bar per method and metric
    assert [t.get_text() for t in ax.get_yticklabels()] == ["accuracy", "macro_f1", "type_accuracy"]
    assert len(ax.patches) == 6 and [t.get_text() for t in ax.get_legend().get_texts()] == ["mmcontext", "baseline"]
    with pytest.raises(KeyError, match="f2"):
        mmc.pl.evaluate(res, metrics=["f2"], show=False)
    with pytest.raises(ValueError, match=r"tl\.evaluate"):
        mmc.pl.evaluate(pd.DataFrame({"a": [1]}), show=False)
    plt.close("all")
