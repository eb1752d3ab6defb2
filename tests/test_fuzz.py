"""Property-based fuzzing of the public functions over random small AnnData objects.

Contract for ``prepare``, ``build_dataset``, ``embed``, ``query`` and ``annotate``: either a correct
result (checked) or a documented ``ValueError`` / ``TypeError`` (missing keys raise
``MMContextKeyError``, a ``ValueError``), never another exception, and never a changed input on failure.
Each function gets ``FUZZ_EXAMPLES`` examples (500 by default; set the environment variable to change it);
one untrained model is shared by all examples so each one is cheap.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import sparse

import mmcontext as mmc
from mmcontext._validation import adata_digest

N_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "500"))
FUZZ = settings(
    max_examples=N_EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
DOCUMENTED = (ValueError, TypeError)
DIM = 6  # input dimension of the shared model

#: odd category names: unicode, whitespace, punctuation, empty, numbers-as-text, very long
NAMES = st.one_of(
    st.sampled_from(
        [
            "B cell",
            "T cell",
            "monocyte",
            "NK cell",
            "",
            " ",
            "n/a",
            "nan",
            "None",
            "Zelle ü",
            "細胞",
            "CD4+ T",
            "a|b",
            "x" * 300,
            "1",
            "\t",
            "🧬 cell",
            "CL:0000236",
        ]
    ),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
)


@st.composite
def matrices(draw, n_obs: int, n_vars: int):
    """A random expression-like matrix: dtype, sparsity, counts or continuous, NaN/inf sometimes."""
    kind = draw(st.sampled_from(["float32", "float64", "int32", "counts", "log", "object", "bool"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if kind == "counts":
        X = rng.poisson(30, size=(n_obs, n_vars)).astype(np.float32)
    elif kind == "log":
        X = np.log1p(rng.poisson(3, size=(n_obs, n_vars))).astype(np.float32)
    elif kind == "object":
        X = rng.normal(size=(n_obs, n_vars)).astype(object)
    elif kind == "bool":
        X = rng.random((n_obs, n_vars)) > 0.5
    elif kind == "int32":
        X = rng.integers(-3, 4, size=(n_obs, n_vars)).astype(np.int32)
    else:
        X = rng.normal(size=(n_obs, n_vars)).astype(kind)
    if X.size and X.dtype.kind == "f" and draw(st.booleans()) and draw(st.booleans()):
        X.flat[draw(st.integers(0, X.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    if kind not in ("object",) and draw(st.booleans()):
        X = sparse.csr_matrix(X)
    return X


@st.composite
def adatas(draw, *, with_init: bool = False):
    """A random small AnnData: shapes (incl. 0), dtypes, sparse/dense, missing values, odd names, duplicates."""
    n_obs = draw(st.integers(0, 12))
    n_vars = draw(st.integers(0, 7))
    X = draw(matrices(n_obs, n_vars))
    names = [f"c{i}" for i in range(n_obs)]
    if n_obs > 1 and draw(st.integers(0, 9)) == 5:
        names[1] = names[0]
    types = draw(st.lists(NAMES, min_size=n_obs, max_size=n_obs))
    types = [None if (t.strip() == "" and draw(st.booleans())) else t for t in types]
    obs = pd.DataFrame(index=pd.Index(names, dtype=object))
    col = draw(st.sampled_from(["cell_type", "celltype", "Cell Type ü", "labels", "weird col!"]))
    obs[col] = pd.Categorical(types) if draw(st.booleans()) else pd.Series(types, index=obs.index, dtype=object)
    if draw(st.booleans()):
        obs["tissue"] = pd.Categorical(
            draw(st.lists(st.sampled_from(["blood", "lung", "脑"]), min_size=n_obs, max_size=n_obs))
        )
    if draw(st.integers(0, 4)) == 2:
        obs["empty"] = pd.Series([np.nan] * n_obs, index=obs.index, dtype=object)
    var = pd.DataFrame(index=[f"g{j}" for j in range(n_vars)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata = ad.AnnData(X, obs=obs, var=var)
    if with_init:
        shape_ok = draw(st.integers(0, 5)) > 0
        if shape_ok or draw(st.booleans()):
            d = DIM if shape_ok else draw(st.sampled_from([1, 3, 7]))
            init = draw(matrices(n_obs, d))
            adata.obsm["X_mmc_init"] = init.toarray() if sparse.issparse(init) and draw(st.booleans()) else init
    if n_obs and draw(st.integers(0, 9)) == 5:
        adata = adata[: max(1, n_obs // 2)]  # a view
    return adata


def _check(call, adata, verify) -> str:
    """Run ``call``; on success run ``verify``; on a documented error check the input is unchanged."""
    before = adata_digest(adata)
    try:
        result = call(adata)
    except DOCUMENTED as err:
        assert adata_digest(adata) == before, f"input changed after {type(err).__name__}: {err}"
        assert str(err), "empty error message"
        return "error"
    verify(adata, result)
    return "ok"


@pytest.fixture(scope="module")
def model():
    return mmc.models.MMContextEncoder.build(DIM, hidden_dim=16, n_layers=1, seed=0)


OUTCOMES: dict[str, dict[str, int]] = {}


def _count(name: str, outcome: str) -> None:
    OUTCOMES.setdefault(name, {"ok": 0, "error": 0})[outcome] += 1


# -- prepare --------------------------------------------------------------------------------------


def _verify_prepare(adata, result):
    out = adata
    init = np.asarray(out.obsm["X_mmc_init"])
    assert init.shape[0] == out.n_obs and init.dtype == np.float32 and np.isfinite(init).all()
    prov = out.uns["mmcontext"]["prepare"]
    assert prov["init_key"] == "X_mmc_init"
    if "caption_key" in prov:
        caps = out.obs[prov["caption_key"]]
        assert len(caps) == out.n_obs
        assert all(c is None or (isinstance(c, str) and c.strip()) for c in caps.tolist() if not pd.isna(c))


@FUZZ
@given(adata=adatas(), method=st.sampled_from(["genes", "pca"]), captions=st.booleans())
def test_fuzz_prepare(adata, method, captions):
    kwargs = {"method": method, "n_components": 3, "ontology": False}
    if not captions:
        kwargs["caption_keys"] = False
    _count("prepare", _check(lambda a: mmc.pp.prepare(a, **kwargs), adata, _verify_prepare))


# -- build_dataset ----------------------------------------------------------------------------------


@FUZZ
@given(adata=adatas(with_init=True), shape=st.sampled_from(["multiplets", "pairs"]), seed=st.integers(0, 3))
def test_fuzz_build_dataset(adata, shape, seed):
    if not adata.is_view and adata.n_obs and "mmc_caption" not in adata.obs:
        col = adata.obs.columns[0]
        adata.obs["mmc_caption"] = adata.obs[col].astype(object).to_numpy()
    with tempfile.TemporaryDirectory() as tmp:

        def verify(a, ds):
            for split in ds:
                cols = ds[split].column_names
                assert "cell" in cols and "caption" in cols, cols
                assert all(isinstance(c, str) and c.strip() for c in ds[split]["caption"])
            assert sum(len(ds[s]) for s in ds) >= 1

        outcome = _check(
            lambda a: mmc.pp.build_dataset(a, Path(tmp) / "stores", shape=shape, seed=seed, caption_key="mmc_caption"),
            adata,
            verify,
        )
    _count("build_dataset", outcome)


# -- embed / query / annotate ---------------------------------------------------------------------------


@FUZZ
@given(adata=adatas(with_init=True), batch_size=st.sampled_from([None, 1, 5]))
def test_fuzz_embed(model, adata, batch_size):
    def verify(a, result):
        emb = a.obsm["X_mmc"]
        assert emb.shape == (a.n_obs, model.omics_encoder.output_dim) and emb.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
        assert a.uns["mmcontext"]["embed"]["input_dim"] == DIM

    _count(
        "embed", _check(lambda a: mmc.tl.embed(a, model, use_rep="X_mmc_init", batch_size=batch_size), adata, verify)
    )


QUERIES = st.lists(
    st.one_of(NAMES, st.sampled_from(["natural killer cells", "B cells", "monocytes"])), min_size=0, max_size=3
)


@FUZZ
@given(adata=adatas(with_init=True), queries=st.one_of(QUERIES, NAMES))
def test_fuzz_query(model, adata, queries):
    def verify(a, result):
        keys = a.uns["mmcontext"]["query"]["keys"]
        for key in keys[-(1 if isinstance(queries, str) else len(queries)) :]:
            scores = a.obs[key].to_numpy()
            assert scores.dtype == np.float32 and np.all(np.abs(scores) <= 1.0 + 1e-5)

    _count("query", _check(lambda a: mmc.tl.query(a, model, queries, use_rep="X_mmc_init"), adata, verify))


@FUZZ
@given(
    adata=adatas(with_init=True),
    labels=st.one_of(
        st.lists(NAMES, min_size=0, max_size=4), st.sampled_from(["cell_type", "celltype", "empty", "nope"])
    ),
    templates=st.sampled_from([None, ["a {label} cell"], ["{label}", "{label} from blood"]]),
)
def test_fuzz_annotate(model, adata, labels, templates):
    def verify(a, result):
        lab = a.obs["mmc_label"]
        assert isinstance(lab.dtype, pd.CategoricalDtype) and len(lab) == a.n_obs
        names = list(a.uns["mmcontext"]["annotate"]["labels"])
        assert set(lab.dropna().astype(str)) <= set(names) | {"unknown"}
        assert np.isfinite(a.obs["mmc_label_score"].to_numpy()).all()
        assert a.obsm["mmc_label_scores"].shape == (a.n_obs, len(names))

    _count(
        "annotate",
        _check(
            lambda a: mmc.tl.annotate(a, model, labels, templates=templates, ontology=False, use_rep="X_mmc_init"),
            adata,
            verify,
        ),
    )


def test_fuzz_outcomes_cover_both_paths():
    """Every fuzzed function both succeeded and failed cleanly on some examples (the fuzzing bites)."""
    for name in ("prepare", "build_dataset", "embed", "query", "annotate"):
        seen = OUTCOMES.get(name)
        if seen is None:  # run on its own (-k): nothing to check
            continue
        assert seen["ok"] > 0 and seen["error"] > 0, (name, seen)
        assert seen["ok"] + seen["error"] >= N_EXAMPLES, (name, seen)
