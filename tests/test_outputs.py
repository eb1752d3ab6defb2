"""Nothing lost: no function writes into a view's parent, or replaces a column it did not write unasked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.conftest import make_adata

import mmcontext as mmc
from mmcontext._provenance import OUTPUTS, record, written_kind
from mmcontext._validation import MMContextOverwriteError, adata_digest


@pytest.fixture(scope="module")
def model():
    return mmc.models.MMContextEncoder.build(30, hidden_dim=16, n_layers=1, seed=0)


@pytest.fixture
def adata():
    adata = make_adata(60, 30)
    adata.X = np.abs(adata.X)  # log-normalised-like (non-negative)
    mmc.pp.prepare(adata, caption_keys={"cell_type": "cell_type"})
    adata.obs["n_genes"] = np.arange(adata.n_obs, dtype=np.float64)  # a numeric column of the user's
    adata.obsm["X_user"] = np.ones((adata.n_obs, 3))  # an embedding of the user's
    return adata


def _head(adata, model):
    return mmc.tl.fit_classifier(adata, model, label_key="cell_type", epochs=1)


#: (function, kwargs naming a user column or key): every writer refuses what mmcontext did not write
WRITERS = {
    "query-categorical": (lambda a, m, **k: mmc.tl.query(a, m, "B cell", **k), "cell_type", "obs"),
    "query-float": (lambda a, m, **k: mmc.tl.query(a, m, "B cell", **k), "n_genes", "obs"),
    "label_query": (lambda a, m, **k: mmc.tl.label_query(a, m, "B cell", labels="cell_type", **k), "tissue", "obs"),
    "annotate": (lambda a, m, **k: mmc.tl.annotate(a, m, ["B cell", "T cell"], **k), "donor_id", "obs"),
    "embed": (lambda a, m, **k: mmc.tl.embed(a, m, **k), "X_user", "obsm"),
    "captions": (lambda a, m, **k: mmc.pp.captions(a, keys={"cell_type": "cell_type"}, **k), "tissue", "obs"),
    "prepare": (lambda a, m, **k: mmc.pp.prepare(a, caption_keys=False, **k), "X_user", "obsm"),
    "classify": (lambda a, m, **k: mmc.tl.classify(a, m, _head(a, m), **k), "cell_type", "obs"),
}


@pytest.mark.parametrize("name", list(WRITERS))
def test_writers_refuse_columns_they_did_not_write(adata, model, name):
    func, key, where = WRITERS[name]
    before = adata_digest(adata)
    with pytest.raises(MMContextOverwriteError, match=rf"adata\.{where}\['{key}'\] already exists.*overwrite=True"):
        func(adata, model, key_added=key)
    if name != "classify":  # classify fits its head first, which records its training in uns
        assert adata_digest(adata) == before
    assert isinstance(MMContextOverwriteError("x"), ValueError)
    func(adata, model, key_added=key, overwrite=True)
    kind = {"query-categorical": "query", "query-float": "query", "label_query": "query"}.get(name, name)
    assert written_kind(adata, key, where) == kind  # replaced, and now known as mmcontext's
    if where == "obs" and kind in ("query", "annotate"):
        assert adata.obs[key].dtype == (np.float32 if kind == "query" else "category")


def test_query_into_a_label_column_names_it(adata, model):
    with pytest.raises(MMContextOverwriteError) as info:
        mmc.tl.query(adata, model, ["B cell", "T cell"], key_added=["mmc_b", "cell_type"])
    msg = str(info.value)
    assert "'cell_type'" in msg and "category" in msg and "not written by mmcontext" in msg and "key_added" in msg
    assert "mmc_b" not in adata.obs  # nothing written, not even the first query's column
    assert isinstance(adata.obs["cell_type"].dtype, pd.CategoricalDtype)


def test_rerunning_a_function_replaces_its_own_results(adata, model):
    mmc.tl.embed(adata, model)
    mmc.tl.embed(adata, model)
    mmc.tl.query(adata, model, "B cell")
    mmc.tl.query(adata, model, "B cell")
    mmc.tl.annotate(adata, model, ["B cell", "T cell"])
    mmc.tl.annotate(adata, model, ["B cell", "T cell", "monocyte"])
    mmc.pp.prepare(adata, caption_keys={"cell_type": "cell_type"})
    mmc.pp.captions(adata, keys={"cell_type": "cell_type"})  # the caption column prepare wrote: same kind
    assert list(adata.obs["mmc_label"].cat.categories) == ["B cell", "T cell", "monocyte"]
    assert written_kind(adata, "mmc_label", "obs") == "annotate"
    assert written_kind(adata, "mmc_b_cell", "obs") == "query"
    assert written_kind(adata, "X_mmc", "obsm") == "embed"
    assert written_kind(adata, "mmc_caption", "obs") == "captions"


@pytest.mark.parametrize(
    ("step", "key", "where"),
    [("query", "mmc_label", "obs"), ("query", "mmc_label_score", "obs"), ("embed", "mmc_label_scores", "obsm")],
)
def test_a_result_of_another_kind_is_not_replaced(adata, model, step, key, where):
    mmc.tl.annotate(adata, model, ["B cell", "T cell"])
    labels = adata.obs["mmc_label"].copy()
    with pytest.raises(MMContextOverwriteError, match=rf"written by mmcontext's 'annotate'.*'{step}' would replace"):
        if step == "query":
            mmc.tl.query(adata, model, "B cell", key_added=key)
        else:
            mmc.tl.embed(adata, model, key_added=key)
    pd.testing.assert_series_equal(adata.obs["mmc_label"], labels)


def test_outputs_survive_h5ad_and_old_records_still_count(adata, model, tmp_path):
    import anndata as ad

    mmc.tl.annotate(adata, model, ["B cell", "T cell"], key_added="lab")
    adata.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    assert written_kind(back, "lab", "obs") == "annotate" and written_kind(back, "lab_scores", "obsm") == "annotate"
    mmc.tl.annotate(back, model, ["B cell", "monocyte"], key_added="lab")  # its own column: no option needed
    # a file written before outputs were noted: its step records name the keys
    del back.uns["mmcontext"][OUTPUTS]
    mmc.tl.annotate(back, model, ["B cell", "T cell"], key_added="lab")
    with pytest.raises(MMContextOverwriteError):
        mmc.tl.annotate(back, model, ["B cell"], key_added="tissue")


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_overwrite_must_be_a_bool(adata, model, bad):
    with pytest.raises(TypeError, match="overwrite must be True or False"):
        mmc.tl.query(adata, model, "B cell", key_added="cell_type", overwrite=bad)


# -- views -----------------------------------------------------------------------------------------------------
VIEW_RECORDERS = {
    "fit_classifier": lambda v, m: mmc.tl.fit_classifier(v, m, label_key="cell_type", epochs=1),
    "fit_classifier_obsm": lambda v, m: mmc.tl.fit_classifier(v, None, label_key="tissue", use_rep="X_user", epochs=1),
    "train_reranker": lambda v, m: mmc.tl.train_reranker(v, caption_key="mmc_caption", epochs=1),
    "query_copy": lambda v, m: mmc.tl.query(v, m, "B cell", copy=True),
    "annotate_copy": lambda v, m: mmc.tl.annotate(v, m, ["B cell", "T cell"], copy=True),
    "prepare_copy": lambda v, m: mmc.pp.prepare(v, key_added="X_new", caption_key_added="cap", copy=True),
}


@pytest.mark.parametrize("name", list(VIEW_RECORDERS))
@pytest.mark.parametrize("fresh_parent", [True, False])
def test_recording_through_a_view_never_writes_into_its_parent(adata, model, name, fresh_parent):
    if fresh_parent:
        del adata.uns["mmcontext"]  # the parent has no record yet (setdefault would have added one)
    before = adata_digest(adata)
    view = adata[:30]
    VIEW_RECORDERS[name](view, model)
    assert adata_digest(adata) == before


def test_record_replaces_the_entry_instead_of_changing_it(adata):
    shared = adata.uns["mmcontext"]
    snapshot = {k: v for k, v in shared.items()}
    record(adata, "custom", {"a": 1}, outputs=("custom", [("x", "obs")]))
    assert dict(shared) == snapshot  # the old dict (a view's parent may hold it) is unchanged
    assert adata.uns["mmcontext"]["custom"]["a"] == 1
    view = adata[:10]
    record(view, "other", {"b": 2})
    assert "other" not in adata.uns["mmcontext"] and view.is_view
