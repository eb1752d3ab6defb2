"""Input validation: every bad input gives a documented error naming the fix, and leaves the AnnData as it was."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

import mmcontext as mmc
from mmcontext._validation import (
    MMContextKeyError,
    adata_digest,
    check_counts,
    check_log_normalised,
    get_obsm,
    looks_like_counts,
)

_spec = importlib.util.spec_from_file_location("bad_inputs", Path(__file__).parents[1] / "benchmarks" / "bad_inputs.py")
bad_inputs = importlib.util.module_from_spec(_spec)
sys.modules["bad_inputs"] = bad_inputs
_spec.loader.exec_module(bad_inputs)
CASES = bad_inputs.cases()


@pytest.fixture(scope="module")
def model():
    return bad_inputs.shared_model()


def test_at_least_25_cases_over_every_public_function():
    assert len(CASES) >= 25
    assert {c.function for c in CASES} >= {
        "pp.prepare",
        "pp.captions",
        "pp.build_dataset",
        "tl.train",
        "tl.embed",
        "tl.query",
        "tl.annotate",
        "models.load",
        "tl.classify",
        "tl.label_query",
        "tl.evaluate",
        "tl.fit_classifier",
    }


@pytest.mark.parametrize("case", CASES, ids=[f"{c.function}:{c.bad_input}" for c in CASES])
def test_bad_input_raises_documented_error_and_leaves_adata_unchanged(case, model, tmp_path):
    row = bad_inputs.run_case(case, model, tmp_path)
    assert isinstance(row["error"], bad_inputs.EXPECTED), row
    assert row["unchanged"], row
    assert len(row["message"]) > 25  # a sentence, not a bare key


def test_errors_table_is_current():
    text = (Path(__file__).parents[1] / "docs" / "errors.md").read_text()
    assert f"{len(CASES)} cases; {len(CASES)} left the input unchanged; {len(CASES)} raised" in text
    for case in CASES:
        assert case.bad_input in text


def test_key_error_is_also_value_error_and_suggests_the_closest_key(tiny):
    tiny.obsm["X_pca"] = np.zeros((tiny.n_obs, 2))
    with pytest.raises(MMContextKeyError) as info:
        get_obsm(tiny, "X_pac")
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert str(info.value) == "adata.obsm['X_pac'] not found. Did you mean 'X_pca'?"  # no KeyError quoting
    with pytest.raises(KeyError):  # scanpy-style handlers keep working
        get_obsm(tiny, "nothing")


def test_counts_detection():
    rng = np.random.default_rng(0)
    counts = rng.poisson(10, size=(50, 20)).astype(np.float32)
    assert looks_like_counts(counts) and looks_like_counts(sparse.csr_matrix(counts))
    assert looks_like_counts(counts.astype(np.int32))
    assert not looks_like_counts(np.log1p(counts))
    assert not looks_like_counts(rng.normal(size=(50, 20)))
    assert not looks_like_counts(np.zeros((3, 3)))  # all zero: not evidence of counts
    with pytest.raises(ValueError, match=r"raw counts.*normalize_total"):
        check_log_normalised(counts, what="adata.X")
    check_counts(counts, what="adata.layers['counts']")
    with pytest.raises(ValueError, match="expects raw counts"):
        check_counts(np.log1p(counts), what="adata.X")


def test_digest_sees_every_part(tiny):
    base = adata_digest(tiny)
    assert adata_digest(tiny.copy()) == base
    for change in (
        lambda a: a.obs.__setitem__("new", 1),
        lambda a: a.obsm.__setitem__("X", np.zeros((a.n_obs, 1))),
        lambda a: a.uns.__setitem__("mmcontext", {"x": 1}),
        lambda a: a.layers.__setitem__("l", a.X.copy()),
        lambda a: a.X.__setitem__((0, 0), a.X[0, 0] + 1e-6),
        lambda a: setattr(a, "obs", a.obs.assign(cell_type=a.obs["cell_type"].cat.rename_categories(str.upper))),
    ):
        other = tiny.copy()
        change(other)
        assert adata_digest(other) != base


def test_copy_true_leaves_input_unchanged(tiny):
    before = adata_digest(tiny)
    out = mmc.pp.prepare(tiny, caption_keys={"cell_type": "cell_type"}, ontology=False, copy=True)
    assert adata_digest(tiny) == before
    assert "X_mmc_init" in out.obsm


def test_view_with_copy_true_is_allowed(tiny):
    view = tiny[:10]
    out = mmc.pp.prepare(view, caption_keys={"cell_type": "cell_type"}, ontology=False, copy=True)
    assert out.n_obs == 10 and not out.is_view and view.is_view


def test_all_finite_is_exact_also_when_the_sum_overflows():
    import warnings

    from mmcontext._validation._values import all_finite

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning for huge finite values or for NaN/inf
        assert all_finite(np.array([1e308, 1e308])) and all_finite(np.zeros((0, 3))) and all_finite(np.arange(4))
        assert not all_finite(np.array([1.0, np.nan])) and not all_finite(np.array([np.inf, -np.inf]))
        assert not all_finite(np.array([[1e308, np.inf]], dtype=np.float64))
