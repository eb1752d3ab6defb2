"""tl.evaluate: classification, per-label and query AUROC, type level, retrieval, embedding metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mmcontext as mmc
from mmcontext.datasets import PBMC_LABEL_KEY, PBMC_QUERIES
from mmcontext.tl._evaluate import ranking_metrics


def test_ranking_metrics_by_hand():
    scores = np.array([[0.9, 0.8, 0.1, 0.0], [0.1, 0.2, 0.9, 0.3]])
    relevant = np.array([[False, True, False, False], [True, False, True, True]])
    m = ranking_metrics(scores, relevant, ks=(1, 2))
    # query 1: relevant at rank 2; query 2: ranks 1, 2, 4 (scores 0.9, 0.3, ..., 0.1)
    assert m["recall@1"] == pytest.approx((0 + 1) / 2)
    assert m["recall@2"] == pytest.approx((1 + 1) / 2)
    assert m["mrr"] == pytest.approx((0.5 + 1) / 2)
    d1 = (1 / np.log2(3)) / 1.0
    d2 = (1 + 1 / np.log2(3) + 1 / np.log2(5)) / (1 + 1 / np.log2(3) + 1 / np.log2(4))
    assert m["ndcg@10"] == pytest.approx((d1 + d2) / 2)


def test_evaluate_perfect_and_chance_predictions(tiny):
    tiny.obs["pred"] = tiny.obs["cell_type"]
    res = mmc.tl.evaluate(tiny, label_key="cell_type", pred_key="pred")
    assert list(res.columns) == ["metric", "subject", "value"]
    vals = res.set_index("metric")["value"]
    assert vals["accuracy"] == 1.0 and vals["macro_f1"] == 1.0 and vals["mcc"] == pytest.approx(1.0)
    tiny.obs["pred"] = pd.Categorical(["B cell"] * tiny.n_obs)
    vals = mmc.tl.evaluate(tiny, label_key="cell_type", pred_key="pred").set_index("metric")["value"]
    assert vals["accuracy"] == pytest.approx(14 / 40) and vals["mcc"] == 0.0
    assert vals["balanced_accuracy"] == pytest.approx(1 / 3)


def test_evaluate_on_pbmc(pbmc_split, trained_model):
    test = pbmc_split[1].copy()
    mmc.tl.embed(test, trained_model)
    mmc.tl.annotate(test, trained_model, PBMC_LABEL_KEY)
    mmc.tl.query(test, trained_model, list(PBMC_QUERIES))
    res = mmc.tl.evaluate(test, label_key=PBMC_LABEL_KEY, queries=PBMC_QUERIES, model=trained_model)
    get = {(m, s): v for m, s, v in res.itertuples(index=False)}
    assert len(get) == len(res)  # (metric, subject) identifies a row
    assert res.query("metric == 'accuracy'")["value"].item() == get[("accuracy", "mmc_label")] >= 0.75
    assert get[("macro_f1", "mmc_label")] >= 0.55
    assert len(res.query("metric == 'label_auroc'")) == 11  # 10 labels + mean
    assert get[("label_auroc", "mean")] >= 0.9
    assert get[("auroc", "mean")] >= 0.85
    assert get[("auroc", "B lymphocytes")] >= 0.95
    assert get[("type_accuracy", "mmc_label_scores")] >= 0.8
    for direction in ("cell_to_text", "text_to_cell"):
        for name in ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10"):
            assert 0.0 <= get[(f"{direction}_{name}", "mmc_caption")] <= 1.0
        assert get[(f"{direction}_mrr", "mmc_caption")] >= 0.8
    # ten distinct captions: every cell's caption is within the top 10
    assert get[("cell_to_text_recall@10", "mmc_caption")] == 1.0
    assert get[("knn_purity", "X_mmc")] >= 0.6
    assert 0.3 <= get[("ari", "X_mmc")] <= 1.0 and 0.3 <= get[("nmi", "X_mmc")] <= 1.0
    assert 0.0 < get[("silhouette", "X_mmc")] <= 1.0
    # same numbers without the stored embedding (the model embeds the cells)
    del test.obsm["X_mmc"]
    again = mmc.tl.evaluate(test, label_key=PBMC_LABEL_KEY, queries=PBMC_QUERIES, model=trained_model)
    np.testing.assert_allclose(again["value"].to_numpy(), res["value"].to_numpy(), atol=1e-6)


def test_shuffled_labels_fall_to_chance(pbmc_split, trained_model):
    test = pbmc_split[1].copy()
    mmc.tl.annotate(test, trained_model, PBMC_LABEL_KEY)
    rng = np.random.default_rng(0)
    test.obs["shuffled"] = test.obs[PBMC_LABEL_KEY].to_numpy()[rng.permutation(test.n_obs)]
    res = mmc.tl.evaluate(test, label_key="shuffled").set_index(["metric", "subject"])["value"]
    assert abs(res[("mcc", "mmc_label")]) < 0.15
    assert 0.35 <= res[("label_auroc", "mean")] <= 0.65


def test_evaluate_errors(tiny):
    with pytest.raises(KeyError, match="not_there"):
        mmc.tl.evaluate(tiny, label_key="not_there")
    with pytest.raises(KeyError, match=r"mmc\.tl\.query"):
        mmc.tl.evaluate(tiny, label_key="cell_type", queries={"B cells": ["B cell"]})
    tiny.obs["mmc_b_cells"] = 0.0
    with pytest.raises(ValueError, match="cover all or none"):
        mmc.tl.evaluate(tiny, label_key="cell_type", queries={"B cells": ["plasma cell"]})
