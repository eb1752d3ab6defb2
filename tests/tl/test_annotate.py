"""tl.annotate: zero-shot labels, templates, Cell Ontology labels and subtypes, smoothing, unknown."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import mmcontext as mmc
from mmcontext.datasets import PBMC_LABEL_KEY
from mmcontext.tl._annotate import smooth_scores
from mmcontext.tl._texts import label_texts, subtype_map

T_LABELS = [
    "CD4+/CD25 T Reg",
    "CD4+/CD45RA+/CD25- Naive T",
    "CD4+/CD45RO+ Memory",
    "CD8+ Cytotoxic T",
    "CD8+/CD45RA+ Naive Cytotoxic",
]


@pytest.fixture
def test_cells(pbmc_split):
    return pbmc_split[1].copy()


def test_annotate_writes_labels_scores_and_is_accurate(test_cells, trained_model, tmp_path):
    labels = list(test_cells.obs[PBMC_LABEL_KEY].cat.categories)
    mmc.tl.annotate(test_cells, trained_model, PBMC_LABEL_KEY)
    obs = test_cells.obs
    assert isinstance(obs["mmc_label"].dtype, pd.CategoricalDtype)
    assert list(obs["mmc_label"].cat.categories) == labels
    assert obs["mmc_label_score"].dtype == np.float32 and obs["mmc_label_margin"].dtype == np.float32
    scores = mmc.tl.label_scores(test_cells)
    assert isinstance(scores, pd.DataFrame) and list(scores.columns) == labels and scores.shape == (140, 10)
    S = scores.to_numpy()
    np.testing.assert_allclose(obs["mmc_label_score"], S.max(axis=1), atol=1e-6)
    top2 = np.sort(S, axis=1)[:, -2:]
    np.testing.assert_allclose(obs["mmc_label_margin"], top2[:, 1] - top2[:, 0], atol=1e-6)
    assert (obs["mmc_label_margin"] >= 0).all()
    acc = float(np.mean(obs["mmc_label"].astype(str) == obs[PBMC_LABEL_KEY].astype(str)))
    assert acc >= 0.75, acc
    entry = test_cells.uns["mmcontext"]["annotate"]
    assert list(entry["labels"]) == labels and entry["smooth"] == 0.0
    path = tmp_path / "a.h5ad"
    test_cells.write_h5ad(path)
    back = ad.read_h5ad(path)
    assert back.obs["mmc_label"].equals(test_cells.obs["mmc_label"])
    np.testing.assert_allclose(np.asarray(back.obsm["mmc_label_scores"]), S)


def test_label_scores_write_without_warnings_and_read_back_with_their_names(test_cells, trained_model, tmp_path):
    import warnings

    labels = list(test_cells.obs[PBMC_LABEL_KEY].cat.categories)
    assert any("/" in lab for lab in labels)
    mmc.tl.annotate(test_cells, trained_model, PBMC_LABEL_KEY)
    stored = test_cells.obsm["mmc_label_scores"]
    assert not any("/" in c for c in stored.columns) and stored.shape[1] == len(labels)
    assert list(test_cells.uns["mmcontext"]["columns"]["mmc_label_scores"]) == labels
    path = tmp_path / "a.h5ad"
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # anndata: "Forward slashes will be disallowed in h5 stores"
        test_cells.write_h5ad(path)
    back = ad.read_h5ad(path)
    restored = mmc.tl.label_scores(back)
    assert list(restored.columns) == labels
    np.testing.assert_array_equal(restored.to_numpy(), mmc.tl.label_scores(test_cells).to_numpy())
    # readers use the label names as given: evaluate's per-label rows and the similarity table
    res = mmc.tl.evaluate(back, label_key=PBMC_LABEL_KEY)
    assert "CD4+/CD25 T Reg" in set(res.loc[res["metric"] == "label_auroc", "subject"])
    from mmcontext.pl._similarity import similarity_table

    assert list(similarity_table(back, PBMC_LABEL_KEY).columns) == labels
    with pytest.raises(KeyError, match="run `mmc"):
        mmc.tl.label_scores(back, key="other")


def test_scores_do_not_depend_on_batch_or_subset(test_cells, trained_model):
    labels = list(test_cells.obs[PBMC_LABEL_KEY].cat.categories)  # a subset may lack some categories
    full = mmc.tl.annotate(test_cells, trained_model, labels, copy=True)
    sub = test_cells[::7].copy()
    old = mmc.settings.batch_size
    try:
        mmc.settings.batch_size = 3
        mmc.tl.annotate(sub, trained_model, labels)
    finally:
        mmc.settings.batch_size = old
    np.testing.assert_allclose(
        sub.obsm["mmc_label_scores"].to_numpy(), full.obsm["mmc_label_scores"].to_numpy()[::7], atol=1e-5
    )
    assert (sub.obs["mmc_label"].astype(str) == full.obs["mmc_label"].astype(str).to_numpy()[::7]).all()


def test_templates_are_averaged(test_cells, trained_model):
    texts = label_texts(["CD56+ NK"], templates=["{caption}", "a {name}", "{label} cells"])
    assert texts[0][1] == "a CD16-positive, CD56-dim natural killer cell, human"
    assert texts[0][2] == "CD56+ NK cells"
    assert "natural killer" in texts[0][0] and "lymphoid lineage" in texts[0][0]
    a = mmc.tl.annotate(
        test_cells, trained_model, ["CD56+ NK", "CD19+ B"], templates=["{caption}", "a {name}"], copy=True
    )
    emb = trained_model.encode_text(texts[0][:2])
    mean = emb.mean(axis=0)
    mean /= np.linalg.norm(mean)
    cells = trained_model.encode_cells(test_cells.obsm["X_mmc_init"])
    np.testing.assert_allclose(a.obsm["mmc_label_scores"]["CD56+ NK"].to_numpy(), cells @ mean, atol=1e-5)
    with pytest.raises(ValueError, match="format string"):
        label_texts(["NK"], templates=["{celltype}"])


def test_cell_ontology_ids_and_subtypes(test_cells, trained_model):
    truth = test_cells.obs[PBMC_LABEL_KEY].astype(str).to_numpy()
    ids = ["CL:0000084", "CL:0000236", "CL:0000576", "CL:0000623", "CL:0000451", "CL:0000037"]
    mapping = subtype_map(["T cell", "myeloid cell"], list(test_cells.obs[PBMC_LABEL_KEY].cat.categories))
    assert sorted(mapping["T cell"]) == sorted(T_LABELS)
    assert sorted(mapping["myeloid cell"]) == ["CD14+ Monocyte"]  # CL puts dendritic cells elsewhere
    plain = mmc.tl.annotate(test_cells, trained_model, ids, copy=True)
    assert list(plain.obs["mmc_label"].cat.categories) == [
        "T cell",
        "B cell",
        "monocyte",
        "natural killer cell",
        "dendritic cell",
        "hematopoietic stem cell",
    ]
    assert list(plain.uns["mmcontext"]["annotate"]["cl_ids"]) == ids
    broad = mmc.tl.annotate(test_cells, trained_model, ids, subtypes=PBMC_LABEL_KEY, copy=True)
    is_t = np.isin(truth, T_LABELS)
    pred_t = broad.obs["mmc_label"].to_numpy() == "T cell"
    # with its subtypes, the broad T cell label finds the T cells (and almost nothing else)
    assert pred_t[is_t].mean() >= 0.9 and pred_t[~is_t].mean() <= 0.1, (pred_t[is_t].mean(), pred_t[~is_t].mean())
    assert broad.obsm["mmc_label_scores"]["T cell"].ge(plain.obsm["mmc_label_scores"]["T cell"] - 1e-6).all()


def test_smoothing_over_the_knn_graph(test_cells, trained_model):
    raw = mmc.tl.annotate(test_cells, trained_model, PBMC_LABEL_KEY, copy=True).obsm["mmc_label_scores"].to_numpy()
    mmc.tl.annotate(test_cells, trained_model, PBMC_LABEL_KEY, smooth=0.4)
    W = test_cells.obsp["connectivities"].toarray()
    deg = W.sum(axis=1, keepdims=True)
    assert (deg == 0).any()  # the subset graph has isolated cells: they keep their scores
    expected = np.where(deg > 0, 0.6 * raw + 0.4 * (W @ raw) / np.maximum(deg, 1e-12), raw)
    np.testing.assert_allclose(test_cells.obsm["mmc_label_scores"].to_numpy(), expected, atol=1e-5)
    assert test_cells.uns["mmcontext"]["annotate"]["neighbors_key"] == "connectivities"
    # an isolated cell keeps its own scores
    out = smooth_scores(np.eye(3, dtype=np.float32), np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]]), 1.0)
    np.testing.assert_allclose(out, [[0, 1, 0], [1, 0, 0], [0, 0, 1]])


def test_min_score_gives_unknown(test_cells, trained_model):
    raw = mmc.tl.annotate(test_cells, trained_model, PBMC_LABEL_KEY, copy=True)
    cut = float(np.median(raw.obs["mmc_label_score"]))
    mmc.tl.annotate(test_cells, trained_model, PBMC_LABEL_KEY, min_score=cut, unknown_label="novel")
    lab = test_cells.obs["mmc_label"]
    assert lab.cat.categories[-1] == "novel"
    low = test_cells.obs["mmc_label_score"].to_numpy() < cut
    assert low.any() and (lab.to_numpy()[low] == "novel").all()
    assert (lab.to_numpy()[~low] == raw.obs["mmc_label"].to_numpy()[~low]).all()


def test_errors_leave_adata_unchanged(test_cells, trained_model, tiny):
    before = set(test_cells.obs.columns), set(test_cells.obsm.keys()), set(test_cells.uns.get("mmcontext", {}))
    with pytest.raises(ValueError, match="distinct"):
        mmc.tl.annotate(test_cells, trained_model, ["CD19+ B", "CD19+ B"])
    with pytest.raises(ValueError, match="distinct"):
        mmc.tl.annotate(test_cells, trained_model, ["B cell", "CL:0000236"])
    with pytest.raises(ValueError, match=r"smooth must be in \[0, 1\]"):
        mmc.tl.annotate(test_cells, trained_model, PBMC_LABEL_KEY, smooth=1.5)
    with pytest.raises(KeyError, match="not_a_column"):
        mmc.tl.annotate(test_cells, trained_model, "not_a_column")
    with pytest.raises(ValueError, match="view"):
        mmc.tl.annotate(test_cells[:10], trained_model, PBMC_LABEL_KEY)
    no_graph = test_cells.copy()
    del no_graph.obsp["connectivities"]
    with pytest.raises(KeyError, match=r"sc.pp.neighbors"):
        mmc.tl.annotate(no_graph, trained_model, PBMC_LABEL_KEY, smooth=0.3)
    assert "mmc_label" not in no_graph.obs
    with pytest.raises(ValueError, match="unknown_label"):
        mmc.tl.annotate(test_cells, trained_model, ["unknown", "CD19+ B"], min_score=0.1)
    after = set(test_cells.obs.columns), set(test_cells.obsm.keys()), set(test_cells.uns.get("mmcontext", {}))
    assert before == after


def test_neighbors_key_reads_scanpy_graph(test_cells, trained_model):
    from sklearn.neighbors import kneighbors_graph

    # what `sc.pp.neighbors(adata, key_added="pca_nn")` writes, without its slow first call
    graph = kneighbors_graph(test_cells.obsm["X_pca"], 10, mode="connectivity", include_self=False)
    test_cells.obsp["pca_nn_connectivities"] = (graph + graph.T).tocsr()
    test_cells.uns["pca_nn"] = {"connectivities_key": "pca_nn_connectivities"}
    mmc.tl.annotate(test_cells, trained_model, PBMC_LABEL_KEY, smooth=0.2, neighbors_key="pca_nn")
    assert test_cells.uns["mmcontext"]["annotate"]["neighbors_key"] == "pca_nn_connectivities"


def test_captions_name_the_lineage():
    from mmcontext.ontology import CellOntology

    onto = CellOntology.load()
    assert [onto.lineage(x) for x in ["Dendritic", "CD14+ Monocyte", "CD19+ B", "NK", "erythrocyte", "CD34+"]] == [
        "myeloid",
        "myeloid",
        "lymphoid",
        "lymphoid",
        "erythroid",
        None,
    ]
    assert onto.lineage("louvain 3") is None
    texts = label_texts(["Dendritic", "CD34+"])
    assert texts[0][0].endswith("of the myeloid lineage.") and "lineage" not in texts[1][0]


def test_label_query_scores_through_labels(test_cells, trained_model, tmp_path):
    from sklearn.metrics import roc_auc_score

    from mmcontext.datasets import PBMC_QUERIES

    truth = test_cells.obs[PBMC_LABEL_KEY].astype(str).to_numpy()
    labels = list(test_cells.obs[PBMC_LABEL_KEY].cat.categories)
    mmc.tl.query(test_cells, trained_model, list(PBMC_QUERIES))
    direct = {
        q: roc_auc_score(np.isin(truth, pos), test_cells.obs[mmc._keys.query_key(q)]) for q, pos in PBMC_QUERIES.items()
    }
    mmc.tl.label_query(test_cells, trained_model, list(PBMC_QUERIES), labels=PBMC_LABEL_KEY)
    via = {
        q: roc_auc_score(np.isin(truth, pos), test_cells.obs[mmc._keys.query_key(q)]) for q, pos in PBMC_QUERIES.items()
    }
    assert np.mean(list(via.values())) >= 0.95 and np.mean(list(via.values())) > np.mean(list(direct.values()))
    assert via["myeloid cells"] >= 0.95 and via["T cells"] >= 0.95
    entry = test_cells.uns["mmcontext"]["query"]
    assert entry["method"] == "labels" and entry["temperature"] == 0.1 and list(entry["labels"]) == labels
    # the score is sum_l p(l | cell) cos(query, l): a probability-weighted mean of label similarities
    from mmcontext.tl._texts import query_texts, text_embeddings

    L = text_embeddings(trained_model, label_texts(labels))
    q = text_embeddings(trained_model, query_texts(["monocytes"], expand="ontology"))[0] @ L.T
    col = test_cells.obs["mmc_monocytes"].to_numpy()
    assert (col >= q.min() - 1e-6).all() and (col <= q.max() + 1e-6).all()
    sub = test_cells[:9].copy()
    mmc.tl.label_query(sub, trained_model, "monocytes", labels=labels, key_added="mono")
    np.testing.assert_allclose(sub.obs["mono"], col[:9], atol=1e-5)
    test_cells.write_h5ad(tmp_path / "q.h5ad")
    with pytest.raises(ValueError, match="temperature"):
        mmc.tl.label_query(test_cells, trained_model, "monocytes", labels=labels, temperature=0)
    with pytest.raises(ValueError, match="duplicate"):
        mmc.tl.label_query(test_cells, trained_model, ["B cells", "b cells"], labels=labels)


def test_second_annotate_under_another_key_keeps_the_first_record(test_cells, trained_model):
    labels = list(test_cells.obs[PBMC_LABEL_KEY].cat.categories)
    mmc.tl.annotate(test_cells, trained_model, PBMC_LABEL_KEY)
    mmc.tl.annotate(test_cells, trained_model, labels[:3], key_added="coarse")
    by_key = test_cells.uns["mmcontext"]["by_key"]
    assert list(by_key["mmc_label"]["labels"]) == labels and list(by_key["coarse"]["labels"]) == labels[:3]
    assert by_key["mmc_label"]["step"] == by_key["coarse"]["step"] == "annotate"
    assert test_cells.uns["mmcontext"]["annotate"]["key_added"] == "coarse"  # the latest call, as before
    from mmcontext._provenance import find_record

    assert list(find_record(test_cells, "annotate", "mmc_label")["labels"]) == labels
    assert find_record(test_cells, "annotate", "not_written") == {}
    res = mmc.tl.evaluate(test_cells, label_key=PBMC_LABEL_KEY)  # reads the default key's results
    assert res.query("metric == 'accuracy'")["value"].iloc[0] >= 0.75
