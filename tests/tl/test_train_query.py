"""The main path on real data: train on the PBMC training cells, check held-out quality."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import mmcontext as mmc
from mmcontext.datasets import PBMC_LABEL_KEY, PBMC_QUERIES

# Queries whose words are in no caption's label: the paraphrase set.
CORE_QUERIES = {
    q: PBMC_QUERIES[q]
    for q in (
        "monocytes",
        "B lymphocytes",
        "natural killer cells",
        "dendritic cells",
        "regulatory T cells",
        "hematopoietic stem and progenitor cells",
        "cytotoxic T cells",
    )
}


def test_training_history_and_loss_goes_down(trained_model):
    losses = [e["loss"] for e in trained_model.mmc_history if "loss" in e]
    assert len(losses) >= 4
    assert np.mean(losses[-2:]) < 0.5 * np.mean(losses[:2])
    assert any("eval_loss" in e for e in trained_model.mmc_history)


def test_heldout_zero_shot_accuracy_and_paraphrase_auroc(trained_model, pbmc_split):
    _, test = pbmc_split
    test = test.copy()
    labels = list(test.obs[PBMC_LABEL_KEY].cat.categories)
    mmc.tl.annotate(test, trained_model, labels)
    acc = float((test.obs["mmc_label"].astype(str) == test.obs[PBMC_LABEL_KEY].astype(str)).mean())
    assert acc >= 0.80, acc
    mmc.tl.query(test, trained_model, list(CORE_QUERIES))
    truth = test.obs[PBMC_LABEL_KEY].astype(str)
    aurocs = {q: roc_auc_score(truth.isin(pos), test.obs[mmc._keys.query_key(q)]) for q, pos in CORE_QUERIES.items()}
    assert np.mean(list(aurocs.values())) >= 0.90, aurocs
    res = mmc.tl.evaluate(test, label_key=PBMC_LABEL_KEY, queries=CORE_QUERIES)
    assert res.query("metric == 'accuracy'")["value"].item() == pytest.approx(acc)
    assert res.query("metric == 'auroc' and subject == 'mean'")["value"].item() == pytest.approx(
        np.mean(list(aurocs.values()))
    )


def test_embed_is_unit_norm_and_independent_of_batch_and_subset(trained_model, pbmc_split):
    _, test = pbmc_split
    full = mmc.tl.embed(test, trained_model, copy=True).obsm["X_mmc"]
    assert full.shape == (140, trained_model.omics_encoder.output_dim)
    np.testing.assert_allclose(np.linalg.norm(full, axis=1), 1, atol=1e-5)
    sub = mmc.tl.embed(test[::7].copy(), trained_model, batch_size=3, copy=True).obsm["X_mmc"]
    np.testing.assert_allclose(sub, full[::7], atol=1e-5)


def test_query_writes_float_columns_that_survive_h5ad(trained_model, pbmc_split, tmp_path):
    _, test = pbmc_split
    adata = test.copy()
    mmc.tl.embed(adata, trained_model)
    mmc.tl.query(adata, trained_model, ["natural killer cells", "Monocytes!"])
    mmc.tl.annotate(adata, trained_model, PBMC_LABEL_KEY)
    for key in ("mmc_natural_killer_cells", "mmc_monocytes"):
        assert adata.obs[key].dtype == np.float32
        assert adata.obs[key].between(-1, 1).all()
    assert adata.uns["mmcontext"]["query"]["queries"] == ["natural killer cells", "Monocytes!"]
    adata.write_h5ad(tmp_path / "q.h5ad")
    back = ad.read_h5ad(tmp_path / "q.h5ad")
    np.testing.assert_array_equal(back.obs["mmc_monocytes"], adata.obs["mmc_monocytes"])
    np.testing.assert_array_equal(back.obsm["X_mmc"], adata.obsm["X_mmc"])
    assert (back.obs["mmc_label"] == adata.obs["mmc_label"]).all()
    assert back.uns["mmcontext"]["embed"]["model_fingerprint"] == adata.uns["mmcontext"]["embed"]["model_fingerprint"]


def test_query_reuses_joint_embedding_only_from_the_same_model(trained_model, pbmc_split):
    _, test = pbmc_split
    adata = test.copy()
    mmc.tl.embed(adata, trained_model)
    adata.obsm["X_mmc"] = np.zeros_like(adata.obsm["X_mmc"])  # stale embedding from "this" model
    mmc.tl.query(adata, trained_model, "monocytes", markers=False)  # the cosine alone
    assert (adata.obs["mmc_monocytes"] == 0).all()
    adata.uns["mmcontext"]["embed"]["model_fingerprint"] = "another-model"
    mmc.tl.query(adata, trained_model, "monocytes")
    assert adata.obs["mmc_monocytes"].std() > 0


def test_query_expansion_phrases_ontology_terms_as_captions_only(trained_model, pbmc_split):
    from mmcontext.tl._texts import query_texts

    texts = query_texts(
        ["monocytes", "CL:0000623", "cells with high mitochondrial content", "proliferating cells"], expand="ontology"
    )
    assert len(texts[0]) == 1 and texts[0][0].startswith("A monocytes, a monocyte")
    assert "mononuclear phagocyte" in texts[0][0] and "myeloid lineage" in texts[0][0]
    assert "natural killer cell" in texts[1][0]
    assert texts[2] == ["cells with high mitochondrial content"]
    assert texts[3] == ["proliferating cells"]  # a loose match ("cycling T cell") is not used
    assert query_texts(["monocytes"], expand=None) == [["monocytes"]]

    _, test = pbmc_split
    adata = test.copy()
    mmc.tl.embed(adata, trained_model)
    mmc.tl.query(
        adata, trained_model, ["monocytes", "odd cells"], expand=None, key_added=["raw", "odd_raw"], markers=False
    )
    text = trained_model.encode_text(["monocytes"])[0]
    np.testing.assert_allclose(adata.obs["raw"], adata.obsm["X_mmc"] @ text, atol=1e-5)
    assert adata.uns["mmcontext"]["query"]["expand"] == "None"  # provenance stores None as text (h5ad-safe)
    mmc.tl.query(adata, trained_model, ["monocytes", "odd cells"], key_added=["expanded", "odd"], markers=False)
    assert adata.uns["mmcontext"]["query"]["expand"] == "ontology"
    assert not np.allclose(adata.obs["expanded"], adata.obs["raw"])
    np.testing.assert_allclose(adata.obs["odd"], adata.obs["odd_raw"], atol=1e-6)  # no CL term: as typed
    truth = adata.obs[PBMC_LABEL_KEY].astype(str).str.contains("Monocyte")
    assert roc_auc_score(truth, adata.obs["expanded"]) >= 0.9


def test_contrast_finds_a_type_left_out_of_training(pbmc_split):
    from mmcontext.tl._query import best_similarity
    from mmcontext.tl._texts import text_embeddings

    train, test = pbmc_split
    model = mmc.tl.train(train[train.obs[PBMC_LABEL_KEY] != "CD19+ B"].copy(), epochs=10, seed=0)
    probe = ad.concat([test, train[train.obs[PBMC_LABEL_KEY] == "CD19+ B"]])
    y = probe.obs[PBMC_LABEL_KEY].astype(str).to_numpy() == "CD19+ B"
    mmc.tl.embed(probe, model)
    mmc.tl.query(probe, model, "B cell", key_added="plain", markers=False)
    mmc.tl.query(probe, model, "B cell", key_added="contrast", contrast=0.5, markers=False)
    assert probe.uns["mmcontext"]["query"]["contrast"] == 0.5
    known = text_embeddings(model, [[c] for c in model.calibration["prior"]])
    assert not any("B cell" in c for c in model.calibration["prior"])  # the type was never captioned
    best = best_similarity(probe.obsm["X_mmc"], known, chunk_size=7)
    np.testing.assert_allclose(best, (probe.obsm["X_mmc"] @ known.T).max(axis=1), atol=1e-6)
    np.testing.assert_allclose(probe.obs["contrast"], probe.obs["plain"] - 0.5 * best, atol=1e-5)
    plain, contrast = roc_auc_score(y, probe.obs["plain"]), roc_auc_score(y, probe.obs["contrast"])
    assert contrast >= 0.8 and contrast > plain + 0.05, (plain, contrast)
    with pytest.raises(ValueError, match="contrast"):
        mmc.tl.query(probe, model, "B cell", contrast=1.5)
    bare = mmc.tl.train(train[:100].copy(), epochs=1, validation_split=0)
    with pytest.raises(ValueError, match="training captions"):
        mmc.tl.query(test[:10].copy(), bare, "B cell", contrast=0.5)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda a, m: mmc.tl.embed(a, m, use_rep="X_pca"), "expects"),
        (lambda a, m: mmc.tl.embed(a, m, use_rep="X_nope"), "not found"),
        (lambda a, m: mmc.tl.query(a, m, []), "empty"),
        (lambda a, m: mmc.tl.query(a, m, ["ok", "OK"]), "duplicate"),
        (lambda a, m: mmc.tl.query(a, m, "x", key_added=["a", "b"]), "2 names"),
        (lambda a, m: mmc.tl.query(a, m, "x", expand="wordnet"), "expand"),
        (lambda a, m: mmc.tl.annotate(a, m, "no_such_column"), "not found"),
        (lambda a, m: mmc.tl.train(a, caption_key="nope"), "not found"),
        (lambda a, m: mmc.tl.train(a, model=m, use_rep="X_pca"), "expects"),
    ],
)
def test_tl_bad_input_is_clear_and_leaves_adata_unchanged(trained_model, pbmc_split, call, match):
    _, test = pbmc_split
    adata = test.copy()
    before_obs, before_obsm, before_uns = adata.obs.copy(), set(adata.obsm), set(adata.uns["mmcontext"])
    with pytest.raises((KeyError, ValueError), match=match):
        call(adata, trained_model)
    assert adata.obs.equals(before_obs)
    assert set(adata.obsm) == before_obsm
    assert set(adata.uns["mmcontext"]) == before_uns


def test_nan_in_initial_embedding_is_rejected(trained_model, pbmc_split):
    _, test = pbmc_split
    adata = test.copy()
    adata.obsm["X_mmc_init"][5, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        mmc.tl.embed(adata, trained_model)
    assert "X_mmc" not in adata.obsm


def test_train_on_tiny_synthetic_data_with_validation_split_zero(tiny):
    mmc.pp.prepare(tiny, ontology=False)
    model = mmc.tl.train(tiny, epochs=2, batch_size=8, validation_split=0, hidden_dim=32)
    assert tiny.uns["mmcontext"]["train"]["n_validation"] == 0
    emb = model.encode_cells(tiny.obsm["X_mmc_init"])
    assert emb.shape == (40, 384)


def test_captioned_cells_are_the_same_for_categorical_and_plain_columns():
    import pandas as pd

    from mmcontext.tl._train_inputs import caption_cells

    values = ["a B cell", None, "  ", "a T cell", "a B cell", ""]
    for column in (pd.Categorical(values), pd.Series(values, dtype=object).to_numpy()):
        adata = ad.AnnData(obs=pd.DataFrame({"c": column}, index=[f"c{i}" for i in range(len(values))]))
        assert caption_cells(adata, "c")[1].tolist() == [True, False, False, True, True, False]
    empty = ad.AnnData(obs=pd.DataFrame({"c": pd.Categorical([None, None])}, index=["a", "b"]))
    with pytest.raises(ValueError, match=r"adata.obs\['c'\] holds no non-empty captions"):
        caption_cells(empty, "c")
