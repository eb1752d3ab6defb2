"""Inputs a hostile user would try: each class of bad input is refused by the shared checks, before any work."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from tests.conftest import make_adata

import mmcontext as mmc
from mmcontext._validation import adata_digest, check_number, check_unique_names


@pytest.fixture(scope="module")
def model():
    return mmc.models.MMContextEncoder.build(30, hidden_dim=16, n_layers=1, seed=0)


@pytest.fixture
def adata(model):
    adata = make_adata(60, 30)
    adata.X = np.abs(adata.X)
    mmc.pp.prepare(adata, caption_keys={"cell_type": "cell_type"})
    mmc.tl.embed(adata, model)
    return adata


# -- silently wrong: non-finite rows in a reused embedding ------------------------------------------------------
USERS_OF_X_MMC = {
    "annotate": lambda a, m: mmc.tl.annotate(a, m, ["B cell", "T cell"]),
    "query": lambda a, m: mmc.tl.query(a, m, "B cell"),
    "label_query": lambda a, m: mmc.tl.label_query(a, m, "B cell", labels="cell_type"),
    "fit_classifier": lambda a, m: mmc.tl.fit_classifier(a, m, label_key="cell_type", epochs=1),
    "evaluate": lambda a, m: mmc.tl.evaluate(a, label_key="cell_type", model=m),
}


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", list(USERS_OF_X_MMC))
def test_non_finite_rows_in_a_reused_embedding_raise(adata, model, name, bad):
    adata.obsm["X_mmc"][[3, 7], 1] = bad
    before = adata_digest(adata)
    with pytest.raises(ValueError, match=r"obsm\['X_mmc'\] has NaN or infinite values in 2 of 60 rows.*\[3, 7\]"):
        USERS_OF_X_MMC[name](adata, model)
    assert adata_digest(adata) == before


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_rows_in_an_input_matrix_raise(adata, model, bad):
    adata.obsm["X_other"] = adata.obsm["X_mmc_init"].copy()
    adata.obsm["X_other"][0, 0] = bad
    for call in (
        lambda: mmc.tl.query(adata, model, "B cell", use_rep="X_other"),
        lambda: mmc.tl.embed(adata, model, use_rep="X_other", key_added="X_e"),
        lambda: mmc.tl.fit_classifier(adata, None, label_key="cell_type", use_rep="X_other", epochs=1),
    ):
        with pytest.raises(ValueError, match=r"obsm\['X_other'\] has NaN or infinite"):
            call()


# -- silently wrong: untrained heads, continuous columns as text ------------------------------------------------
def test_untrained_or_wrong_heads_are_refused(adata, model, tmp_path):
    head = mmc.models.ClassifierHead(model.get_embedding_dimension(), classes=["a", "b"], hidden_dim=8)
    with pytest.raises(ValueError, match=r"untrained ClassifierHead.*fit_classifier"):
        mmc.tl.classify(adata, model, head)
    trained = mmc.tl.fit_classifier(adata, model, label_key="cell_type", epochs=1)
    trained.save(tmp_path / "head")
    for wrong in (str(tmp_path / "head"), tmp_path / "head", "head", 3):
        with pytest.raises(TypeError, match="must be an mmcontext ClassifierHead"):
            mmc.tl.classify(adata, model, wrong)
    assert "mmc_classify" not in adata.obs
    mmc.tl.classify(adata, model, mmc.models.ClassifierHead.load(tmp_path / "head"))  # a loaded trained head: fine
    assert "mmc_classify" in adata.obs


def test_untrained_reranker_is_refused(adata, model):
    fresh = mmc.models.CellTextReranker(30, d_model=16, n_layers=1)
    for call in (
        lambda: mmc.tl.query(adata, model, "B cell", rerank=fresh),
        lambda: mmc.tl.annotate(adata, model, ["B cell", "T cell"], rerank=fresh),
    ):
        with pytest.raises(ValueError, match=r"untrained CellTextReranker.*train_reranker"):
            call()
    with pytest.raises(TypeError, match="must be an mmcontext CellTextReranker"):
        mmc.tl.query(adata, model, "B cell", rerank="reranker_folder")


@pytest.mark.parametrize(
    "call",
    [
        lambda a: mmc.pp.captions(a, keys={"cell_type": "score"}, key_added="cap"),
        lambda a: mmc.pp.captions(a, keys={"cell_type": "cell_type", "tissue": "score"}, key_added="cap"),
        lambda a: mmc.pp.captions(a, template="A cell scoring {score}.", key_added="cap"),
        lambda a: mmc.pp.prepare(a, caption_keys={"cell_type": "score"}, caption_key_added="cap", key_added="X_2"),
        lambda a: mmc.tl.train(a, caption_key="score", epochs=1),
        lambda a: mmc.tl.train_reranker(a, caption_key="score", epochs=1),
    ],
)
def test_a_continuous_column_is_not_used_as_text(adata, call):
    adata.obs["score"] = np.random.default_rng(0).random(adata.n_obs)
    adata.obs.loc[adata.obs_names[0], "score"] = np.nan
    before = adata_digest(adata)
    with pytest.raises(ValueError, match=r"obs\['score'\] is a continuous \(float\) column.*pd\.cut"):
        call(adata)
    assert adata_digest(adata) == before


def test_integer_valued_numbers_still_caption(adata):
    adata.obs["age"] = (np.arange(adata.n_obs) % 3 * 10.0 + 20).astype(np.float64)  # 20.0, 30.0, 40.0
    adata.obs["count"] = np.arange(adata.n_obs) % 2
    mmc.pp.captions(adata, template="A cell from a {age} year old, batch {count}.", key_added="cap")
    assert "30" in adata.obs["cap"].iloc[1] and "batch 1" in adata.obs["cap"].iloc[1]


# -- deeper-library errors: one check per argument kind ---------------------------------------------------------
@pytest.mark.parametrize(
    ("queries", "err"),
    [
        (7, TypeError),
        (3.5, TypeError),
        ({"a": 1}, TypeError),
        (b"nk", TypeError),
        ([1], ValueError),
        ([""], ValueError),
    ],
)
def test_queries_of_the_wrong_kind(adata, model, queries, err):
    for func in (mmc.tl.query, lambda a, m, q: mmc.tl.label_query(a, m, q, labels="cell_type")):
        with pytest.raises(err, match="queries"):
            func(adata, model, queries)
    assert not [c for c in adata.obs if c.startswith("mmc_") and c != "mmc_caption"]


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"min_score": "0.5"}, TypeError, "min_score must be a number"),
        ({"min_score": True}, TypeError, "min_score must be a number"),
        ({"min_score": float("nan")}, ValueError, "min_score must be a number, got NaN"),
        ({"smooth": "0.2"}, TypeError, "smooth must be a number"),
        ({"smooth": 1.5}, ValueError, r"smooth must be in \[0, 1\]"),
        ({"top_k": 1.5}, TypeError, "top_k must be an integer"),
        ({"top_k": 0}, ValueError, "top_k must be >= 1"),
        ({"unknown_label": 3}, TypeError, "unknown_label"),
    ],
)
def test_annotate_numbers_are_checked_before_scoring(adata, model, kwargs, err, match, monkeypatch):
    from mmcontext.tl import _annotate

    def never(*args, **kwargs):
        raise AssertionError("scored before the arguments were checked")

    monkeypatch.setattr(_annotate, "joint_embedding", never)
    before = adata_digest(adata)
    with pytest.raises(err, match=match):
        mmc.tl.annotate(adata, model, ["B cell", "T cell"], **kwargs)
    assert adata_digest(adata) == before


@pytest.mark.parametrize(
    ("call", "err", "match"),
    [
        (lambda a, m: mmc.tl.query(a, m, "B cell", contrast="0.5"), TypeError, "contrast must be a number"),
        (lambda a, m: mmc.tl.query(a, m, "B cell", contrast=2), ValueError, r"contrast must be in \[0, 1\]"),
        (lambda a, m: mmc.tl.label_query(a, m, "B", labels="cell_type", temperature=0), ValueError, "temperature"),
        (lambda a, m: mmc.tl.label_query(a, m, "B", labels="cell_type", temperature="1"), TypeError, "temperature"),
        (lambda a, m: mmc.tl.train(a, epochs=0), ValueError, "epochs must be >= 1"),
        (lambda a, m: mmc.tl.train(a, epochs=1.5), TypeError, "epochs must be an integer"),
        (lambda a, m: mmc.tl.train(a, epochs="3"), TypeError, "epochs must be an integer"),
        (lambda a, m: mmc.tl.train(a, batch_size=1), ValueError, "batch_size must be >= 2"),
        (lambda a, m: mmc.tl.train(a, learning_rate=-1), ValueError, "learning_rate must be > 0"),
        (lambda a, m: mmc.tl.fit_classifier(a, m, label_key="cell_type", epochs=0), ValueError, "epochs must be"),
        (lambda a, m: mmc.tl.fit_classifier(a, m, label_key="cell_type", dropout=2), ValueError, "dropout"),
        (lambda a, m: mmc.tl.train_reranker(a, n_negatives=1.5), TypeError, "n_negatives must be an integer"),
        (lambda a, m: mmc.tl.train_reranker(a, hard_negatives=-1), ValueError, "hard_negatives"),
    ],
)
def test_numbers_are_checked_everywhere(adata, model, call, err, match):
    before = adata_digest(adata)
    with pytest.raises(err, match=match):
        call(adata, model)
    assert adata_digest(adata) == before


@pytest.mark.parametrize(
    ("kwargs", "err"),
    [
        ({"n_negatives": 1.5}, TypeError),
        ({"n_negatives": "2"}, TypeError),
        ({"n_negatives": 0}, ValueError),
        ({"negative_pool": 0.5}, TypeError),
        ({"validation_size": "0.1"}, TypeError),
        ({"seed": 1.5}, TypeError),
    ],
)
def test_build_dataset_checks_numbers_before_writing(adata, tmp_path, kwargs, err):
    store = tmp_path / "stores"
    with pytest.raises(err, match=next(iter(kwargs))):
        mmc.pp.build_dataset(adata, store, **kwargs)
    assert not store.exists()


@pytest.mark.parametrize("wrong", ["my_model", "/no/such/model", 3, None])
def test_a_model_path_or_other_object_where_a_model_is_expected(adata, wrong):
    calls = [
        lambda: mmc.tl.query(adata, wrong, "B cell"),
        lambda: mmc.tl.label_query(adata, wrong, "B cell", labels="cell_type"),
        lambda: mmc.tl.annotate(adata, wrong, ["B cell"]),
        lambda: mmc.tl.embed(adata, wrong),
    ]
    calls += [lambda: mmc.tl.evaluate(adata, label_key="cell_type", model=wrong)] if wrong is not None else []
    for call in calls:
        with pytest.raises(TypeError, match="must be an mmcontext MMContextEncoder"):
            call()
    for call in (
        lambda: mmc.tl.fit_classifier(adata, wrong, label_key="cell_type"),
        lambda: mmc.tl.train(adata, model=wrong, epochs=1),
    ):
        if wrong is None:
            continue
        with pytest.raises(TypeError, match="must be an mmcontext MMContextEncoder"):
            call()
    if isinstance(wrong, str):
        with pytest.raises(TypeError, match=r"Load it first: `model = mmc.models.load\(path\)`"):
            mmc.tl.label_query(adata, wrong, "B cell", labels="cell_type")


def test_evaluate_queries_take_one_label_or_a_list(adata, model):
    mmc.tl.query(adata, model, ["B cell", "T cell"])
    one = mmc.tl.evaluate(adata, label_key="cell_type", queries={"B cell": "B cell"})
    listed = mmc.tl.evaluate(adata, label_key="cell_type", queries={"B cell": ["B cell"]})
    pd.testing.assert_frame_equal(one, listed)
    for bad, err in (
        (["B cell"], TypeError),
        ("B cell", TypeError),
        ({"B cell": [1]}, ValueError),
        ({3: "x"}, TypeError),
    ):
        with pytest.raises(err, match="queries"):
            mmc.tl.evaluate(adata, label_key="cell_type", queries=bad)


@pytest.mark.parametrize("method", ["genes", "pca"])
def test_duplicated_var_names(method):
    adata = make_adata(40, 30)
    adata.X = np.abs(adata.X)
    adata.var_names = [f"g{j % 20}" for j in range(30)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "genes":
            with pytest.raises(
                ValueError, match=r"adata\.var_names are not unique \(e\.g\. \['g0'.*var_names_make_unique"
            ):
                mmc.pp.prepare(adata, caption_keys=False)
        else:  # PCA reads all genes by position: duplicates do no harm there, but a reference model must match by name
            mmc.pp.prepare(adata, method="pca", n_components=5, caption_keys=False)
            assert adata.obsm["X_mmc_init"].shape == (40, 5)


@pytest.mark.parametrize(
    ("names", "clash"),
    [([1, "1", 2], True), (["a", "a", "b"], False), ([0.5, "0.5", "x"], True)],
)
def test_obs_names_that_collide_as_strings(names, clash):
    adata = make_adata(3, 30, n_types=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata.obs_names = pd.Index(names, dtype=object)
    msg = r"obs_names are not unique once converted to strings" if clash else r"obs_names are not unique \(e\.g\."
    for call in (
        lambda: mmc.pp.prepare(adata, method="pca", n_components=2, caption_keys=False),
        lambda: mmc.pp.captions(adata, keys={"cell_type": "cell_type"}),
        lambda: check_unique_names(adata.obs_names, what="adata.obs_names"),
    ):
        with pytest.raises(ValueError, match=msg.replace("adata.", "")):
            call()


@pytest.mark.parametrize(
    ("value", "kwargs", "err"),
    [
        ("1", {}, TypeError),
        (None, {}, TypeError),
        (True, {"integer": True}, TypeError),
        (np.float32(2.0), {"integer": True}, None),
        (np.int64(3), {"low": 1}, None),
        (0, {"low": 0, "low_open": True}, ValueError),
        (float("inf"), {"high": 10}, ValueError),
        (None, {"none": True}, None),
    ],
)
def test_check_number(value, kwargs, err):
    if err is None:
        out = check_number(value, what="x", **kwargs)
        assert out == value and (out is None or isinstance(out, (int, float)))
    else:
        with pytest.raises(err, match="x must be"):
            check_number(value, what="x", **kwargs)
