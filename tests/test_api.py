"""The public API keeps the scanpy conventions, and `import mmcontext` stays cheap."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import mmcontext as mmc

# functions whose subject is not an AnnData: a model, a results table, a dataset
NOT_ANNDATA = {mmc.pl.training, mmc.pl.evaluate, mmc.pp.resample_negatives}
PUBLIC = [getattr(ns, name) for ns in (mmc.pp, mmc.tl, mmc.pl) for name in ns.__all__]
#: Functions that write into an AnnData, found by their ``copy`` parameter (the scanpy contract), not listed by hand.
WRITERS = [f for f in PUBLIC if "copy" in inspect.signature(f).parameters]


@pytest.mark.parametrize("func", PUBLIC, ids=lambda f: f"{f.__module__}.{f.__name__}")
def test_signature_conventions(func):
    params = list(inspect.signature(func).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert len(positional) <= 3, f"{func.__name__}: at most three positional parameters"
    for p in positional:
        assert not isinstance(p.default, bool), f"{func.__name__}: boolean {p.name!r} must be keyword-only"
    if func not in NOT_ANNDATA:
        assert params[0].name == "adata"
    assert func.__doc__ and "Returns" in func.__doc__, f"{func.__name__}: document what it returns"


def test_writers_are_found():
    # every AnnData writer of pp / tl takes copy=; new ones are picked up without editing this file
    names = {f"{f.__module__.split('.')[1]}.{f.__name__}" for f in WRITERS}
    expected = {"pp.prepare", "pp.captions", "tl.embed", "tl.query", "tl.annotate", "tl.classify", "tl.label_query"}
    assert expected <= names
    assert not any(f.__module__.startswith("mmcontext.pl") for f in WRITERS)  # plots never write results


@pytest.mark.parametrize("func", WRITERS, ids=lambda f: f.__name__)
def test_writers_take_key_added_and_copy(func):
    sig = inspect.signature(func)
    params = sig.parameters
    assert params["copy"].default is False and params["copy"].kind is inspect.Parameter.KEYWORD_ONLY
    assert "key_added" in params and params["key_added"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["adata"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert str(sig.return_annotation) == "AnnData | None", f"{func.__name__}: return the copy or None"


def test_import_is_cheap():
    heavy = "('torch', 'sentence_transformers', 'datasets')"
    code = f"import sys, mmcontext; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_query_key_names():
    assert mmc._keys.query_key("Natural killer cells") == "mmc_natural_killer_cells"
    assert mmc._keys.query_key("CD4+/CD25 T-reg ") == "mmc_cd4_cd25_t_reg"
    with pytest.raises(ValueError, match="key_added"):
        mmc._keys.query_key("+++")
