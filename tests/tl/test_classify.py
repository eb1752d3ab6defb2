"""Supervised heads: tl.fit_classifier / tl.classify / tl.classify_evaluate and models.ClassifierHead."""

from __future__ import annotations

import subprocess
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from conftest import make_adata

import mmcontext as mmc


@pytest.fixture
def pbmc_masked(pbmc):
    """pbmc68k_reduced with obs['is_train'] from the package's split."""
    train, _ = mmc.datasets.pbmc_split(pbmc)
    pbmc.obs["is_train"] = np.isin(np.arange(pbmc.n_obs), train)
    return pbmc


def _metric(table: pd.DataFrame, metric: str, subject: str | None = None) -> float:
    rows = table[table.metric == metric]
    if subject is not None:
        rows = rows[rows.subject == subject]
    assert len(rows) == 1, (metric, subject, table)
    return float(rows.value.iloc[0])


def test_classification_on_pca_heldout(pbmc_masked, tmp_path):
    adata = pbmc_masked
    head = mmc.tl.fit_classifier(adata, None, use_rep="X_pca", label_key="bulk_labels", train_mask="is_train")
    assert head.task == "classification" and len(head.classes) == 10
    assert head.history[-1]["loss"] < head.history[0]["loss"]
    mmc.tl.classify(adata, None, head, key_added="clf")
    assert isinstance(adata.obs["clf"].dtype, pd.CategoricalDtype)
    assert list(adata.obs["clf"].cat.categories) == head.classes
    from mmcontext._frames import read_frame

    probs = read_frame(adata, "clf_probs")
    assert not any("/" in c for c in adata.obsm["clf_probs"].columns)
    assert probs.shape == (adata.n_obs, 10) and list(probs.columns) == head.classes
    np.testing.assert_allclose(probs.to_numpy().sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(adata.obs["clf_score"].to_numpy(), probs.to_numpy().max(1), atol=1e-6)
    test = ~adata.obs["is_train"].to_numpy()
    table, preds = mmc.tl.classify_evaluate(
        adata, label_key="bulk_labels", key_added="clf", mask=test, return_predictions=True
    )
    assert set(table.metric) == {"accuracy", "balanced_accuracy", "macro_f1", "mcc", "n"}
    assert _metric(table, "n") == test.sum() == 140
    acc = _metric(table, "accuracy")
    assert acc == pytest.approx((preds.truth.astype(str) == preds.prediction.astype(str)).mean())
    assert acc > 0.7 and _metric(table, "macro_f1") > 0.5 and _metric(table, "mcc") > 0.6
    assert [c for c in preds.columns if c.startswith("prob_")] == [f"prob_{c}" for c in head.classes]
    # h5ad round trip
    adata.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    pd.testing.assert_frame_equal(read_frame(back, "clf_probs"), probs, check_dtype=False)
    assert back.uns["mmcontext"]["classify"]["key_added"] == "clf"


def test_joint_embedding_head_beats_chance_and_writes(pbmc_split, trained_model):
    train, test = pbmc_split
    both = ad.concat([train, test], merge="same", uns_merge="first")
    both.obs["is_train"] = np.r_[np.ones(train.n_obs, bool), np.zeros(test.n_obs, bool)]
    mmc.tl.classify(both, trained_model, label_key="bulk_labels", train_mask="is_train", epochs=40)
    table = mmc.tl.classify_evaluate(both, label_key="bulk_labels", mask=~both.obs["is_train"].to_numpy())
    assert _metric(table, "accuracy") > 0.75
    assert both.uns["mmcontext"]["classify"]["model_fingerprint"]


def test_binary_confusion_counts(pbmc_masked):
    adata = pbmc_masked
    adata.obs["is_mono"] = pd.Categorical(
        np.where(adata.obs.bulk_labels == "CD14+ Monocyte", "mono", "other"), categories=["other", "mono"]
    )
    head = mmc.tl.fit_classifier(adata, None, use_rep="X_pca", label_key="is_mono", train_mask="is_train", epochs=20)
    mmc.tl.classify(adata, None, head, key_added="mono")
    test = ~adata.obs["is_train"].to_numpy()
    table = mmc.tl.classify_evaluate(adata, label_key="is_mono", key_added="mono", mask=test)
    tp, tn, fp, fn = (_metric(table, m, "mono") for m in ("tp", "tn", "fp", "fn"))
    assert tp + tn + fp + fn == test.sum()
    truth = adata.obs.is_mono.to_numpy()[test] == "mono"
    assert tp + fn == truth.sum()
    assert _metric(table, "accuracy") == pytest.approx((tp + tn) / test.sum())
    assert _metric(table, "auroc", "mono") > 0.9


def test_multilabel_from_separated_column(tmp_path):
    adata = make_adata(90, 30, n_types=3, seed=1)
    lineage = {"B cell": "lymphocyte;B", "T cell": "lymphocyte;T", "monocyte": "myeloid"}
    adata.obs["tags"] = adata.obs["cell_type"].map(lineage).astype(str)
    adata.obsm["X_feat"] = adata.X.copy()
    mmc.tl.classify(
        adata, None, label_key="tags", task="multilabel", use_rep="X_feat", epochs=60, key_added="tags_pred"
    )
    probs = adata.obsm["tags_pred_probs"]
    assert list(probs.columns) == ["B", "T", "lymphocyte", "myeloid"]
    assert set(adata.obs["tags_pred"].astype(str)) <= {"B;lymphocyte", "T;lymphocyte", "myeloid", ""}
    table = mmc.tl.classify_evaluate(adata, label_key="tags", key_added="tags_pred")
    assert _metric(table, "subset_accuracy") > 0.95
    assert _metric(table, "tp", "myeloid") == 30
    adata.write_h5ad(tmp_path / "m.h5ad")


def test_multilabel_from_bool_columns():
    adata = make_adata(60, 20, n_types=3, seed=2)
    adata.obs["is_b"] = adata.obs.cell_type == "B cell"
    adata.obs["is_lymph"] = adata.obs.cell_type != "monocyte"
    adata.obsm["X_feat"] = adata.X.copy()
    head = mmc.tl.fit_classifier(adata, None, label_key=["is_b", "is_lymph"], task="multilabel", use_rep="X_feat")
    assert head.classes == ["is_b", "is_lymph"]
    mmc.tl.classify(adata, None, head)
    table = mmc.tl.classify_evaluate(adata, label_key=["is_b", "is_lymph"])
    assert _metric(table, "macro_f1") > 0.95


def test_regression_recovers_linear_target(tmp_path):
    rng = np.random.default_rng(0)
    adata = make_adata(200, 10, seed=3)
    adata.obsm["X_feat"] = rng.normal(size=(200, 10)).astype(np.float32)
    adata.obs["age"] = 40 + 10 * adata.obsm["X_feat"][:, 0] - 5 * adata.obsm["X_feat"][:, 1] + rng.normal(0, 1, 200)
    adata.obs.loc[adata.obs_names[:5], "age"] = np.nan  # unlabelled cells are predicted, not trained on
    train = np.arange(200) < 150
    head = mmc.tl.fit_classifier(
        adata,
        None,
        label_key="age",
        task="regression",
        use_rep="X_feat",
        train_mask=train,
        hidden_dim=0,
        epochs=150,
        learning_rate=1e-2,
    )
    mmc.tl.classify(adata, None, head, key_added="age_pred")
    assert adata.obs["age_pred"].dtype == np.float32 and np.isfinite(adata.obs["age_pred"]).all()
    table = mmc.tl.classify_evaluate(adata, label_key="age", key_added="age_pred", mask=~train)
    assert _metric(table, "r2") > 0.95 and _metric(table, "mae") < 2.0 and _metric(table, "n") == 50
    assert "age_pred_probs" not in adata.obsm
    adata.write_h5ad(tmp_path / "r.h5ad")


def test_save_load_fresh_process_identical(pbmc_masked, tmp_path):
    adata = pbmc_masked
    head = mmc.tl.fit_classifier(adata, None, use_rep="X_pca", label_key="bulk_labels", epochs=5)
    head.save(tmp_path / "head")
    np.save(tmp_path / "X.npy", adata.obsm["X_pca"])
    expected = head.predict(adata.obsm["X_pca"])
    code = (
        "import numpy as np, sys; from mmcontext.models import ClassifierHead;"
        f"h = ClassifierHead.load({str(tmp_path / 'head')!r});"
        f"np.save({str(tmp_path / 'p.npy')!r}, h.predict(np.load({str(tmp_path / 'X.npy')!r})));"
        "print(h.classes[0], len(h.history), sep='|')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().split("|") == [head.classes[0], "5"]
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), expected)


def test_text_features_are_appended(pbmc_split, trained_model):
    train, _ = pbmc_split
    adata = train[:120].copy()
    adata.obs["origin"] = np.where(np.arange(adata.n_obs) % 2, "fresh blood sample", "frozen blood sample")
    head = mmc.tl.fit_classifier(adata, trained_model, label_key="bulk_labels", text_key="origin", epochs=3)
    assert head.input_dim == 2 * trained_model.omics_encoder.output_dim
    mmc.tl.classify(adata, trained_model, head)
    assert adata.uns["mmcontext"]["classify"]["text_key"] == "origin"


def test_errors_leave_adata_unchanged(pbmc_masked):
    adata = pbmc_masked
    before = (set(adata.obs.columns), set(adata.obsm.keys()))
    with pytest.raises(KeyError, match="bulk_label"):
        mmc.tl.classify(adata, None, label_key="bulk_label", use_rep="X_pca")
    with pytest.raises(ValueError, match="task must be one of"):
        mmc.tl.fit_classifier(adata, None, label_key="bulk_labels", use_rep="X_pca", task="ranking")
    with pytest.raises(TypeError, match="numeric"):
        mmc.tl.fit_classifier(adata, None, label_key="bulk_labels", use_rep="X_pca", task="regression")
    adata.obs["one"] = "x"
    with pytest.raises(ValueError, match="single class"):
        mmc.tl.fit_classifier(adata, None, label_key="one", use_rep="X_pca")
    with pytest.raises(ValueError, match="use_rep"):
        mmc.tl.fit_classifier(adata, None, label_key="bulk_labels")
    head = mmc.tl.fit_classifier(adata, None, label_key="bulk_labels", use_rep="X_pca", epochs=1)
    with pytest.raises(ValueError, match="expects 50"):
        mmc.tl.classify(adata, None, head, use_rep="X_umap")
    with pytest.raises(TypeError, match="only apply"):
        mmc.tl.classify(adata, None, head, epochs=3)
    with pytest.raises(ValueError, match="No classify result"):
        mmc.tl.classify_evaluate(adata, label_key="bulk_labels", key_added="nope")
    adata.obs.drop(columns="one", inplace=True)
    assert (set(adata.obs.columns), set(adata.obsm.keys())) == before


def test_records_are_kept_per_key_added(pbmc_masked, tmp_path):
    # a second classify under another key_added keeps the first one's record, and evaluation finds each
    adata = pbmc_masked
    head = mmc.tl.fit_classifier(adata, None, use_rep="X_pca", label_key="bulk_labels", train_mask="is_train", epochs=5)
    mmc.tl.classify(adata, None, head, key_added="first")
    adata.obs["is_mono"] = (adata.obs.bulk_labels == "CD14+ Monocyte").astype(str)
    mono = mmc.tl.fit_classifier(adata, None, use_rep="X_pca", label_key="is_mono", epochs=5)
    mmc.tl.classify(adata, None, mono, key_added="second")
    by_key = adata.uns["mmcontext"]["by_key"]
    assert by_key["first"]["step"] == by_key["second"]["step"] == "classify"
    assert len(by_key["first"]["classes"]) == 10 and sorted(by_key["second"]["classes"]) == ["False", "True"]
    assert adata.uns["mmcontext"]["classify"]["key_added"] == "second"  # the latest call, as before
    first = mmc.tl.classify_evaluate(adata, label_key="bulk_labels", key_added="first")
    assert first.set_index("metric").loc["n", "value"] == adata.n_obs
    with pytest.raises(ValueError, match="never_written"):
        mmc.tl.classify_evaluate(adata, label_key="bulk_labels", key_added="never_written")
    adata.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    assert list(back.uns["mmcontext"]["by_key"]["first"]["classes"]) == list(by_key["first"]["classes"])
