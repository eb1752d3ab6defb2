"""Bad inputs to every public function: the error each one gives, and proof the input was left unchanged.

Run ``PYTHONPATH=src python benchmarks/bad_inputs.py`` to print the table and write ``docs/errors.md``.
``tests/test_validation.py`` runs the same cases and asserts the contract: each raises a documented
``ValueError`` / ``TypeError`` (missing keys raise :class:`~mmcontext._validation.MMContextKeyError`,
both a ``KeyError`` and a ``ValueError``; missing files ``FileNotFoundError``) and the AnnData's
content digest is the same before and after.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

import mmcontext as mmc
from mmcontext._validation import adata_digest

EXPECTED = (ValueError, TypeError, FileNotFoundError)


def toy(n_obs: int = 24, n_vars: int = 12, *, seed: int = 0) -> ad.AnnData:
    """A small log-normalised-looking AnnData with cell types, prepared (gene panel + captions)."""
    rng = np.random.default_rng(seed)
    X = np.log1p(rng.poisson(2.0, size=(n_obs, n_vars))).astype(np.float32)
    types = np.array(["B cell", "T cell", "monocyte"])[np.arange(n_obs) % 3]
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical(types), "empty": pd.Series([np.nan] * n_obs, dtype=object), "blank": [""] * n_obs},
        index=[f"c{i}" for i in range(n_obs)],
    )
    adata = ad.AnnData(X, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(n_vars)]))
    adata.layers["counts"] = rng.poisson(30.0, size=(n_obs, n_vars)).astype(np.float32)
    mmc.pp.prepare(adata, caption_keys={"cell_type": "cell_type"}, ontology=False)
    return adata


@dataclass
class Case:
    function: str
    bad_input: str
    setup: Callable[[ad.AnnData], ad.AnnData]  # returns the (damaged) AnnData to pass
    call: Callable[[ad.AnnData, object, Path], object]  # (adata, model, tmp) -> runs the function


def _set(adata: ad.AnnData, fn) -> ad.AnnData:
    fn(adata)
    return adata


def _dup_names(a):
    a.obs_names = ["c0"] * 2 + list(a.obs_names[2:])
    return a


def _backed(a, tmp: Path):
    path = tmp / "backed.h5ad"
    del a.obs["empty"]  # an all-NaN object column is not h5ad-writable
    a.write_h5ad(path)
    return ad.read_h5ad(path, backed="r")


def _nan_init(a):
    a.obsm["X_mmc_init"][3, 2] = np.nan
    return a


def _inf_rep(a):
    a.obsm["X_pca"] = np.ones((a.n_obs, 4), dtype=np.float32)
    a.obsm["X_pca"][0, 0] = np.inf
    return a


def _str_rep(a):
    a.obsm["X_str"] = np.full((a.n_obs, 3), "x", dtype=object)
    return a


def _counts_X(a):
    a.X = np.asarray(a.layers["counts"]).copy()
    return a


def _sparse_nan(a):
    X = sparse.csr_matrix(a.X)
    X.data[0] = np.nan
    a.X = X
    return a


def _damaged_model(tmp: Path, model, damage: str) -> Path:
    path = tmp / f"model_{damage}"
    mmc.models.save_model(model, path)
    omics = path / "omics_0_OmicsEncoder"
    if damage == "truncated":
        with open(omics / "model.safetensors", "r+b") as fh:
            fh.truncate(50)
    elif damage == "json":
        (path / "modules.json").write_text("[{")
    elif damage == "missing":
        (omics / "config.json").unlink()
        (omics / "model.safetensors").unlink()
        os.rmdir(omics)
    return path


def cases() -> list[Case]:
    """The bad inputs tried (each on a fresh copy of :func:`toy`)."""
    P, T = mmc.pp, mmc.tl
    same = lambda a: a  # noqa: E731
    return [
        # -- pp.prepare ------------------------------------------------------------------------
        Case("pp.prepare", "not an AnnData (a DataFrame)", lambda a: a.to_df(), lambda a, m, t: P.prepare(a)),
        Case("pp.prepare", "zero cells", lambda a: a[:0].copy(), lambda a, m, t: P.prepare(a)),
        Case("pp.prepare", "zero genes", lambda a: a[:, :0].copy(), lambda a, m, t: P.prepare(a, caption_keys=False)),
        Case("pp.prepare", "duplicated obs_names", _dup_names, lambda a, m, t: P.prepare(a)),
        Case("pp.prepare", "a view (adata[mask])", lambda a: a[:10], lambda a, m, t: P.prepare(a)),
        Case("pp.prepare", "backed AnnData opened read-only", None, lambda a, m, t: P.prepare(a)),
        Case("pp.prepare", "misspelled layer 'count'", same, lambda a, m, t: P.prepare(a, layer="count")),
        Case("pp.prepare", "misspelled use_rep 'X_mmc_int'", same, lambda a, m, t: P.prepare(a, use_rep="X_mmc_int")),
        Case("pp.prepare", "NaN in a sparse adata.X", _sparse_nan, lambda a, m, t: P.prepare(a, method="pca")),
        Case("pp.prepare", "inf in the use_rep embedding", _inf_rep, lambda a, m, t: P.prepare(a, use_rep="X_pca")),
        Case("pp.prepare", "non-numeric use_rep embedding", _str_rep, lambda a, m, t: P.prepare(a, use_rep="X_str")),
        Case(
            "pp.prepare",
            "raw integer counts where log-normalised data is needed",
            _counts_X,
            lambda a, m, t: P.prepare(a, method="pca"),
        ),
        Case("pp.prepare", "unknown method 'pcaa'", same, lambda a, m, t: P.prepare(a, method="pcaa")),
        Case(
            "pp.prepare",
            "normalize=True on values that are not counts",
            same,
            lambda a, m, t: P.prepare(a, normalize=True, caption_keys=False),
        ),
        Case(
            "pp.prepare",
            "orthologs= without a reference model",
            same,
            lambda a, m, t: P.prepare(a, orthologs="mouse", caption_keys=False),
        ),
        Case(
            "pp.prepare",
            "ortholog table that maps none of the reference's genes",
            same,
            lambda a, m, t: P.prepare(
                a, reference=P.prepare(a, caption_keys=False, copy=True), orthologs={"NOPE": "nope"}, caption_keys=False
            ),
        ),
        Case(
            "pp.prepare",
            "all-NaN caption column",
            same,
            lambda a, m, t: P.prepare(a, caption_keys={"cell_type": "empty"}),
        ),
        Case(
            "pp.prepare",
            "misspelled caption column 'cel_type'",
            same,
            lambda a, m, t: P.prepare(a, caption_keys={"cell_type": "cel_type"}),
        ),
        Case(
            "pp.captions",
            "template names a missing column",
            same,
            lambda a, m, t: P.captions(a, template="{cell_typ} from blood"),
        ),
        Case("pp.captions", "a view (adata[mask])", lambda a: a[:5], lambda a, m, t: P.captions(a)),
        # -- tl.train ------------------------------------------------------------------------------
        Case("tl.train", "misspelled caption_key", same, lambda a, m, t: T.train(a, caption_key="mmc_captoin")),
        Case("tl.train", "caption column of empty strings", same, lambda a, m, t: T.train(a, caption_key="blank")),
        Case(
            "tl.train",
            "model whose input space has another dimension",
            same,
            lambda a, m, t: T.train(a, model=mmc.models.MMContextEncoder.build(5, hidden_dim=8, n_layers=1)),
        ),
        Case("tl.train", "resume=True without output_dir", same, lambda a, m, t: T.train(a, resume=True)),
        Case("tl.train", "NaN in the initial embedding", _nan_init, lambda a, m, t: T.train(a)),
        Case("tl.train", "a view (adata[mask])", lambda a: a[:12], lambda a, m, t: T.train(a)),
        # -- tl.embed ------------------------------------------------------------------------------
        Case(
            "tl.embed",
            "not prepared (no initial embedding)",
            lambda a: _set(a, lambda x: (x.obsm.clear(), x.uns.clear())),
            lambda a, m, t: T.embed(a, m),
        ),
        Case(
            "tl.embed",
            "initial embedding with the wrong dimension for the model",
            lambda a: _set(a, lambda x: x.obsm.__setitem__("X_wrong", np.ones((x.n_obs, 7), np.float32))),
            lambda a, m, t: T.embed(a, m, use_rep="X_wrong"),
        ),
        Case("tl.embed", "NaN in the initial embedding", _nan_init, lambda a, m, t: T.embed(a, m)),
        Case("tl.embed", "a model path instead of a model", same, lambda a, m, t: T.embed(a, "my_model")),
        Case("tl.embed", "key_added not a string", same, lambda a, m, t: T.embed(a, m, key_added=3)),
        Case("tl.embed", "a view (adata[mask])", lambda a: a[:5], lambda a, m, t: T.embed(a, m)),
        # -- tl.query ------------------------------------------------------------------------------
        Case("tl.query", "empty list of queries", same, lambda a, m, t: T.query(a, m, [])),
        Case("tl.query", "query without letters or digits ('!!!')", same, lambda a, m, t: T.query(a, m, "!!!")),
        Case(
            "tl.query", "two queries mapping to one column", same, lambda a, m, t: T.query(a, m, ["B cells", "b-cells"])
        ),
        Case(
            "tl.query",
            "key_added count differs from queries",
            same,
            lambda a, m, t: T.query(a, m, ["B cells", "T cells"], key_added="x"),
        ),
        Case("tl.query", "backed AnnData opened read-only", None, lambda a, m, t: T.query(a, m, "B cells")),
        # -- tl.annotate ---------------------------------------------------------------------------
        Case("tl.annotate", "misspelled label column 'cell_typ'", same, lambda a, m, t: T.annotate(a, m, "cell_typ")),
        Case("tl.annotate", "duplicated labels", same, lambda a, m, t: T.annotate(a, m, ["B cell", "B cell"])),
        Case("tl.annotate", "an empty label", same, lambda a, m, t: T.annotate(a, m, ["B cell", " "])),
        Case("tl.annotate", "label column with only NaN", same, lambda a, m, t: T.annotate(a, m, "empty")),
        # -- pp.build_dataset ------------------------------------------------------------------------
        Case(
            "pp.build_dataset",
            "misspelled caption_key",
            same,
            lambda a, m, t: P.build_dataset(a, t / "stores", caption_key="mmc_captoin"),
        ),
        Case("pp.build_dataset", "duplicated obs_names", _dup_names, lambda a, m, t: P.build_dataset(a, t / "stores")),
        # -- models.load ---------------------------------------------------------------------------
        Case("models.load", "folder that does not exist", same, lambda a, m, t: mmc.models.load(t / "nope")),
        Case(
            "models.load",
            "truncated weights file",
            same,
            lambda a, m, t: mmc.models.load(_damaged_model(t, m, "truncated")),
        ),
        Case(
            "models.load", "corrupted modules.json", same, lambda a, m, t: mmc.models.load(_damaged_model(t, m, "json"))
        ),
        Case(
            "models.load",
            "omics module folder missing",
            same,
            lambda a, m, t: mmc.models.load(_damaged_model(t, m, "missing")),
        ),
    ]


def run_case(case: Case, model, tmp: Path) -> dict:
    """Run one case; return the function, input, exception type and text, and whether the input is unchanged."""
    adata = toy()
    if case.setup is None:
        adata = _backed(adata, tmp)
    else:
        adata = case.setup(adata)
    before = adata_digest(adata) if isinstance(adata, ad.AnnData) else adata.to_numpy().tobytes()
    try:
        case.call(adata, model, tmp)
        error, text = None, "(no error)"
    except Exception as err:
        error, text = err, str(err)
    after = adata_digest(adata) if isinstance(adata, ad.AnnData) else adata.to_numpy().tobytes()
    if isinstance(adata, ad.AnnData) and adata.isbacked:
        adata.file.close()
    return {
        "function": case.function,
        "bad_input": case.bad_input,
        "error": error,
        "type": type(error).__name__ if error is not None else "-",
        "message": text,
        "unchanged": before == after,
    }


def run_all() -> list[dict]:
    """Run every case with a shared untrained model."""
    model = mmc.models.MMContextEncoder.build(12, hidden_dim=16, n_layers=1, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        return [
            run_case(case, model, Path(tmp) / str(i))
            for i, case in enumerate(cases())
            if Path(tmp, str(i)).mkdir() is None
        ]


def markdown(rows: list[dict]) -> str:
    """The rows as the table in ``docs/errors.md``."""
    lines = [
        "# Errors on bad input",
        "",
        "Every public function validates its input before writing anything. Each row is a bad input tried by",
        "`benchmarks/bad_inputs.py` (checked by `tests/test_validation.py`): the exception, its message, and",
        "whether the AnnData was left exactly as before (a content digest of X, obs, var, obsm, varm,",
        "layers, obsp, varp and uns, compared before and after the call).",
        "",
        "Missing keys raise `MMContextKeyError`, which is both a `KeyError` (as in scanpy) and a `ValueError`",
        "(the package's contract: bad input raises `ValueError` or `TypeError`); missing files raise",
        "`FileNotFoundError`.",
        "",
        f"{len(rows)} cases; {sum(r['unchanged'] for r in rows)} left the input unchanged; "
        f"{sum(isinstance(r['error'], EXPECTED) for r in rows)} raised a documented error type.",
        "",
        "| # | function | bad input | error | message | input unchanged |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows, 1):
        msg = r["message"].replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| {i} | `{r['function']}` | {r['bad_input']} | `{r['type']}` | {msg} | "
            f"{'yes' if r['unchanged'] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    mmc.settings.progress = False
    rows = run_all()
    text = markdown(rows)
    out = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
    out.write_text(text)
    sys.stdout.write(text)
    bad = [r for r in rows if not (r["unchanged"] and isinstance(r["error"], EXPECTED))]
    sys.exit(1 if bad else 0)
