"""tl.search(markers=...): queries naming a cell type ranked by cosine + marker evidence, as tl.query scores them."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

import mmcontext as mmc
from mmcontext.tl import _search
from mmcontext.tl._grounding import MARKER_WEIGHT

NK = "natural killer cell"
NK_LABEL = "CD56+ NK"


@pytest.fixture(scope="module")
def pbmcs(pbmc_split):
    """All 700 bundled PBMCs (train + test, copies), prepared as the fixture model's training data was."""
    train, test = pbmc_split
    return ad.concat([train, test], merge="same", uns_merge="first")


def _n_nk(adata, hits):
    return int((adata.obs.loc[hits["obs_name"], "bulk_labels"] == NK_LABEL).sum())


@pytest.fixture(scope="module")
def without_nk(pbmc_split, pbmcs):
    """A model trained on the training PBMCs minus the NK cells, and every PBMC embedded by it."""
    train, _ = pbmc_split
    model = mmc.tl.train(train[train.obs["bulk_labels"] != NK_LABEL].copy(), epochs=10, seed=0)
    cells = pbmcs.copy()
    mmc.tl.embed(cells, model)
    return model, cells


def test_markers_find_a_type_the_model_never_saw(without_nk):
    model, cells = without_nk
    k = int((cells.obs["bulk_labels"] == NK_LABEL).sum())  # 31 NK cells
    words = mmc.tl.search(cells, model, NK, k=k, markers=False)
    assert not cells.uns["mmcontext"]["mmc_search"]["markers"]
    grounded = mmc.tl.search(cells, model, NK, k=k)
    # measured: 1 of the 31 hits are NK cells by cosine alone, 21 with markers (seed 1: 4 and 22)
    assert _n_nk(cells, words) <= 6 and _n_nk(cells, grounded) >= 15, (_n_nk(cells, words), _n_nk(cells, grounded))
    rec = cells.uns["mmcontext"]["mmc_search"]
    assert rec["markers"] and rec["marker_weight"] == MARKER_WEIGHT and rec["marker_pool"] == 10 * k
    info = rec["grounding"]["mmc_natural_killer_cell"]
    assert info["query"] == NK and info["term_id"] == "CL:0000623"
    assert {"GNLY", "NKG7", "PRF1"} <= set(info["genes"]) and "NCAM1" in info["missing_genes"]
    assert len(info["gene_z_top"]) == len(info["genes"]) == len(info["gene_z_pool"])
    assert np.mean(info["gene_z_top"]) > np.mean(info["gene_z_pool"])  # the hits carry the markers


def test_grounded_scores_are_tl_query_scores(trained_model, pbmcs, tmp_path):
    cells = pbmcs.copy()
    mmc.tl.embed(cells, trained_model)
    hits = mmc.tl.search(cells, trained_model, NK, k=30)
    scored = mmc.tl.query(cells, trained_model, [NK], copy=True).obs["mmc_natural_killer_cell"]
    np.testing.assert_allclose(hits["score"], scored.loc[hits["obs_name"]], atol=1e-5)
    best = scored.sort_values(ascending=False, kind="stable").index[:30]
    assert list(hits["obs_name"]) == list(best)  # the pool (300 of 700 cells) holds tl.query's top 30
    cells.write_h5ad(tmp_path / "c.h5ad")
    back = ad.read_h5ad(tmp_path / "c.h5ad").uns["mmcontext"]["mmc_search"]["grounding"]["mmc_natural_killer_cell"]
    info = cells.uns["mmcontext"]["mmc_search"]["grounding"]["mmc_natural_killer_cell"]
    assert list(back["genes"]) == list(info["genes"]) and back["read_from"] == info["read_from"]
    # the trained model already finds NK cells by name: 29 of the top 30 either way
    assert _n_nk(cells, hits) >= 27 and _n_nk(cells, mmc.tl.search(cells, trained_model, NK, k=30, markers=False)) >= 27


def test_markers_off_is_plain_cosine_search(trained_model, pbmcs, monkeypatch):
    cells = pbmcs.copy()
    mmc.tl.embed(cells, trained_model)
    queries = [NK, "monocytes", "a cell from blood"]
    plain = mmc.tl.search(cells, trained_model, queries, k=25, markers=False)
    zero = mmc.tl.search(cells, trained_model, queries, k=25, marker_weight=0.0)
    assert plain.equals(zero) and "grounding" not in cells.uns["mmcontext"]["mmc_search"]
    # the search before grounding: nearest() for k cells, nothing else
    calls = []
    real = _search.nearest
    monkeypatch.setattr(_search, "nearest", lambda *a, **kw: calls.append(kw["k"]) or real(*a, **kw))
    again = mmc.tl.search(cells, trained_model, queries, k=25, markers=False)
    assert calls == [25] and again.equals(plain)
    E = cells.obsm["X_mmc"]
    from mmcontext.tl._texts import query_texts, text_embeddings

    S = text_embeddings(trained_model, query_texts(queries, expand="ontology")) @ E.T
    for j, q in enumerate(queries):
        part = plain[plain["query"] == q]
        np.testing.assert_allclose(part["score"], np.sort(S[j])[::-1][:25], atol=1e-5)
    # a query without usable marker genes is searched by cosine alone, markers on or not
    calls.clear()
    other = mmc.tl.search(cells, trained_model, "a cell from blood", k=25)
    assert calls == [25] and not cells.uns["mmcontext"]["mmc_search"]["markers"]
    assert list(other["obs_name"]) == list(plain[plain["query"] == "a cell from blood"]["obs_name"])


def test_grounding_through_an_index_and_a_filter(trained_model, pbmcs):
    cells = pbmcs.copy()
    mmc.tl.embed(cells, trained_model)
    exact = mmc.tl.search(cells, trained_model, NK, k=10, obs_filter={"phase": ["G1", "S"]})
    index = mmc.tl.build_index(cells, method="hnswlib")
    approx = mmc.tl.search(cells, trained_model, NK, k=10, index=index)
    full = mmc.tl.search(cells, trained_model, NK, k=10)
    assert len(set(approx["obs_name"]) & set(full["obs_name"])) >= 9
    assert cells.obs.loc[exact["obs_name"], "phase"].isin(["G1", "S"]).all()
    with pytest.raises(ValueError, match="marker_weight"):
        mmc.tl.search(cells, trained_model, NK, marker_weight=-1)
