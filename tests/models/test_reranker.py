"""CellTextReranker: phrases, top-k reordering, training on PBMC, save/load, and the tl.query/tl.annotate hook."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import mmcontext as mmc
from mmcontext.models import CellTextReranker
from mmcontext.ontology import caption_phrases


@pytest.fixture(scope="module")
def reranker(pbmc_split):
    train, _ = pbmc_split
    return mmc.tl.train_reranker(train.copy(), seed=0)  # default epochs


def test_caption_phrases():
    caption = "A CD14+ Monocyte, a CD14-positive monocyte, a kind of monocyte and mononuclear phagocyte."
    assert caption_phrases(caption) == ["CD14+ Monocyte", "CD14-positive monocyte", "monocyte", "mononuclear phagocyte"]


def test_rerank_only_reorders_within_top_k():
    rng = np.random.default_rng(0)
    rr = CellTextReranker(6, seed=0)
    X = rng.normal(size=(30, 6)).astype(np.float32)
    texts = ["a B cell", "a monocyte", "a natural killer cell"]
    scores = rng.uniform(-1, 1, size=(30, 3)).astype(np.float32)
    new, probs = rr.rerank(X, texts, scores, top_k=5, axis=0)
    for j in range(3):
        top = np.argsort(-scores[:, j])[:5]
        rest = np.setdiff1d(np.arange(30), top)
        np.testing.assert_array_equal(np.sort(new[top, j]), np.sort(scores[top, j]))  # same values, new order
        np.testing.assert_array_equal(new[rest, j], scores[rest, j])
        assert np.isnan(probs[rest, j]).all() and ((probs[top, j] > 0) & (probs[top, j] < 1)).all()
        # with weight=1 the top-k follow the cross-encoder's logits exactly
    new1, probs1 = rr.rerank(X, texts, scores, top_k=5, axis=0, weight=1.0)
    top = np.argsort(-scores[:, 0])[:5]
    assert np.array_equal(np.argsort(-new1[top, 0]), np.argsort(-probs1[top, 0]))
    # axis=1: labels reordered within each cell's row
    new, probs = rr.rerank(X, texts, scores, top_k=2, axis=1)
    np.testing.assert_array_equal(np.sort(new, axis=1), np.sort(scores, axis=1))
    assert (np.isnan(probs).sum(axis=1) == 1).all()
    with pytest.raises(ValueError, match="top_k"):
        rr.rerank(X, texts, scores, top_k=0, axis=0)
    with pytest.raises(ValueError, match="expects"):
        rr.rerank(X[:, :4], texts, scores, top_k=2, axis=0)


def test_trained_reranker_matches_held_out_captions(pbmc_split, reranker):
    _, test = pbmc_split
    assert reranker.train_seconds > 0  # recorded (its speed is a benchmark's business, not a test's)
    assert reranker.history[-1]["loss"] < reranker.history[0]["loss"]
    captions = test.obs["mmc_caption"].astype(str).to_numpy()
    uniq = list(np.unique(captions))
    X = test.obsm[reranker.input_space["obsm_key"]]
    cells = np.repeat(np.arange(test.n_obs), len(uniq))
    texts = np.tile(np.arange(len(uniq)), test.n_obs)
    logits = reranker.score_pairs(X, uniq, cells, texts).reshape(test.n_obs, len(uniq))
    y = captions[:, None] == np.asarray(uniq)[None]
    assert roc_auc_score(y.ravel(), logits.ravel()) > 0.9
    assert (np.asarray(uniq)[logits.argmax(1)] == captions).mean() > 0.5  # alone, over all 10 captions (chance 0.1)


def test_save_load_identical(pbmc_split, reranker, tmp_path):
    _, test = pbmc_split
    reranker.save(tmp_path / "rr")
    back = CellTextReranker.load(tmp_path / "rr")
    X = test.obsm[reranker.input_space["obsm_key"]][:20]
    texts = ["natural killer cells", "A CD19+ B, a B cell"]
    idx = np.arange(20)
    for j in range(2):
        np.testing.assert_allclose(
            back.score_pairs(X, texts, idx, np.full(20, j)),
            reranker.score_pairs(X, texts, idx, np.full(20, j)),
            atol=1e-5,
        )
    assert back.history == reranker.history and back.input_space == reranker.input_space
    with pytest.raises(FileNotFoundError, match="not a saved CellTextReranker"):
        CellTextReranker.load(tmp_path)


def test_query_and_annotate_hooks(pbmc_split, trained_model, reranker, tmp_path):
    _, test = pbmc_split
    queries = ["natural killer cells", "monocytes"]
    plain = test.copy()
    mmc.tl.query(plain, trained_model, queries)
    reranked = test.copy()
    mmc.tl.query(reranked, trained_model, queries, rerank=reranker, top_k=20)
    for q in queries:
        key = mmc._keys.query_key(q)
        before, after = plain.obs[key].to_numpy(), reranked.obs[key].to_numpy()
        top = np.argsort(-before)[:20]
        rest = np.setdiff1d(np.arange(test.n_obs), top)
        np.testing.assert_array_equal(after[rest], before[rest])
        np.testing.assert_allclose(np.sort(after[top]), np.sort(before[top]))
        probs = reranked.obs[f"{key}_rerank"].to_numpy()
        assert np.isfinite(probs).sum() == 20 and np.isnan(probs[rest]).all()
    assert reranked.uns["mmcontext"]["query"]["rerank_top_k"] == 20
    mmc.tl.annotate(reranked, trained_model, "bulk_labels", rerank=reranker, top_k=3)
    plain_labels = mmc.tl.annotate(test, trained_model, "bulk_labels", copy=True)
    scores = plain_labels.obsm["mmc_label_scores"].to_numpy()
    top3 = np.argsort(-scores, axis=1)[:, :3]
    chosen = reranked.obs["mmc_label"].cat.codes.to_numpy()
    assert all(c in row for c, row in zip(chosen, top3, strict=True))
    assert np.isfinite(reranked.obs["mmc_label_rerank_score"]).all()
    acc = (reranked.obs["mmc_label"].astype(str) == reranked.obs["bulk_labels"].astype(str)).mean()
    assert acc > 0.7
    reranked.write_h5ad(tmp_path / "r.h5ad")
    back = ad.read_h5ad(tmp_path / "r.h5ad")
    assert "mmc_natural_killer_cells_rerank" in back.obs


def test_hook_errors(pbmc_split, trained_model, reranker):
    _, test = pbmc_split
    adata = test.copy()
    with pytest.raises(TypeError, match="CellTextReranker"):
        mmc.tl.query(adata, trained_model, "monocytes", rerank="yes")
    with pytest.raises(ValueError, match="top_k"):
        mmc.tl.query(adata, trained_model, "monocytes", rerank=reranker, top_k=0)
    wrong_size = CellTextReranker(7, input_space={"obsm_key": "X_pca"})
    wrong_size.history = [{"epoch": 1, "loss": 1.0}]  # passes as trained: the input size is what is wrong
    with pytest.raises(ValueError, match="features but the reranker expects"):
        mmc.tl.annotate(adata, trained_model, "bulk_labels", rerank=wrong_size)
    assert "mmc_monocytes" not in adata.obs and "mmc_label" not in adata.obs
