"""Bad inputs to every public function: the error each one gives, and proof the input was left unchanged.

Run ``PYTHONPATH=src python benchmarks/bad_inputs.py`` to print the table and write ``docs/errors.md``.
``tests/test_validation.py`` runs the same cases and asserts the contract: each raises a documented
``ValueError`` / ``TypeError`` (missing keys raise :class:`~mmcontext._validation.MMContextKeyError`,
both a ``KeyError`` and a ``ValueError``; missing files ``FileNotFoundError``) and the AnnData's
content digest is the same before and after.
"""

from __future__ import annotations

import functools
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

EXPECTED = (ValueError, TypeError, FileNotFoundError, FileExistsError)


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


@functools.cache
def shared_model():
    """The untrained model every case runs with (seeded, so each build has the same weights)."""
    return mmc.models.MMContextEncoder.build(12, hidden_dim=16, n_layers=1, seed=0)


def _embedded(bad):
    """Setup: ``obsm['X_mmc']`` written by the shared model (so functions reuse it), row 2 set to ``bad``."""

    def setup(a):
        mmc.tl.embed(a, shared_model())
        a.obsm["X_mmc"][2, 0] = bad
        return a

    return setup


def _annotated(a):
    mmc.tl.annotate(a, shared_model(), ["B cell", "T cell"])
    return a


def _float_column(a):
    a.obs["score"] = np.linspace(0.01, 0.99, a.n_obs)
    return a


def _dup_genes(a):
    a.var_names = ["g0"] * 2 + list(a.var_names[2:])
    return a


def _str_collision(a):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.obs_names = pd.Index([1, "1", *a.obs_names[2:]], dtype=object)
    return a


def _untrained_head(m):
    return mmc.models.ClassifierHead(m.get_embedding_dimension(), classes=["a", "b"], hidden_dim=8)


def _a_file(tmp: Path) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "notes.txt").write_text("a user's file")
    return tmp / "notes.txt"


def _damaged_model(tmp: Path, model, damage: str) -> Path:
    path = tmp / f"model_{damage}"
    mmc.models.save_model(model, path)
    omics = path / "omics_0_OmicsEncoder"
    if damage == "truncated":
        with open(omics / "model.safetensors", "r+b") as fh:
            fh.truncate(50)
    elif damage == "json":
        (path / "modules.json").write_text("[{")
    elif damage == "code":  # a folder naming a class of its own: loading it would import evil_mod.py
        import json

        modules = json.loads((path / "modules.json").read_text())
        modules.append({"idx": len(modules), "name": "evil", "path": "", "type": "evil_mod.Evil"})
        (path / "modules.json").write_text(json.dumps(modules))
        (path / "evil_mod.py").write_text("raise SystemExit('shipped code ran')\n")
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
        # -- overwriting what mmcontext did not write ----------------------------------------------
        Case(
            "tl.query",
            "key_added naming a label column of the data",
            same,
            lambda a, m, t: T.query(a, m, "B cells", key_added="cell_type"),
        ),
        Case(
            "tl.annotate",
            "key_added naming a label column of the data",
            same,
            lambda a, m, t: T.annotate(a, m, ["B cell", "T cell"], key_added="cell_type"),
        ),
        Case(
            "tl.embed",
            "key_added naming an embedding of the user's",
            lambda a: _set(a, lambda x: x.obsm.__setitem__("X_pca", np.ones((x.n_obs, 3), np.float32))),
            lambda a, m, t: T.embed(a, m, key_added="X_pca"),
        ),
        Case(
            "pp.captions",
            "key_added naming a column of the data",
            same,
            lambda a, m, t: P.captions(a, key_added="blank"),
        ),
        Case(
            "tl.query",
            "key_added naming mmcontext's label column",
            _annotated,
            lambda a, m, t: T.query(a, m, "B cells", key_added="mmc_label"),
        ),
        # -- silently wrong results ----------------------------------------------------------------
        Case(
            "tl.annotate",
            "NaN row in a reused obsm['X_mmc']",
            _embedded(np.nan),
            lambda a, m, t: T.annotate(a, m, ["B cell"]),
        ),
        Case(
            "tl.query",
            "inf row in a reused obsm['X_mmc']",
            _embedded(np.inf),
            lambda a, m, t: T.query(a, m, "B cells"),
        ),
        Case("tl.classify", "an untrained ClassifierHead", same, lambda a, m, t: T.classify(a, m, _untrained_head(m))),
        Case(
            "tl.classify", "a head folder path instead of a head", same, lambda a, m, t: T.classify(a, m, "head_folder")
        ),
        Case(
            "pp.captions",
            "a continuous (float) column as caption key",
            _float_column,
            lambda a, m, t: P.captions(a, keys={"cell_type": "score"}),
        ),
        Case(
            "tl.train",
            "a continuous (float) column as caption_key",
            _float_column,
            lambda a, m, t: T.train(a, caption_key="score"),
        ),
        # -- wrong kinds of argument ----------------------------------------------------------------
        Case("tl.query", "queries as a number (7)", same, lambda a, m, t: T.query(a, m, 7)),
        Case("tl.query", "queries as a dict", same, lambda a, m, t: T.query(a, m, {"B cells": 1})),
        Case("tl.query", "contrast as a string", same, lambda a, m, t: T.query(a, m, "B cells", contrast="0.5")),
        Case(
            "tl.annotate",
            "min_score as a string ('0.5')",
            same,
            lambda a, m, t: T.annotate(a, m, ["B cell"], min_score="0.5"),
        ),
        Case("tl.annotate", "top_k as a float (1.5)", same, lambda a, m, t: T.annotate(a, m, ["B cell"], top_k=1.5)),
        Case(
            "tl.label_query",
            "a model path instead of a model",
            same,
            lambda a, m, t: T.label_query(a, "my_model", "B cells", labels="cell_type"),
        ),
        Case(
            "tl.evaluate",
            "queries as a list, not a dict",
            same,
            lambda a, m, t: T.evaluate(a, label_key="cell_type", queries=["B cell"]),
        ),
        Case("tl.train", "epochs=0", same, lambda a, m, t: T.train(a, epochs=0)),
        Case("tl.train", "epochs as a string ('3')", same, lambda a, m, t: T.train(a, epochs="3")),
        Case(
            "tl.fit_classifier",
            "epochs=1.5",
            same,
            lambda a, m, t: T.fit_classifier(a, m, label_key="cell_type", epochs=1.5),
        ),
        Case(
            "pp.build_dataset",
            "n_negatives=1.5",
            same,
            lambda a, m, t: P.build_dataset(a, t / "stores", n_negatives=1.5),
        ),
        Case("pp.prepare", "duplicated var_names", _dup_genes, lambda a, m, t: P.prepare(a, caption_keys=False)),
        Case("pp.prepare", "obs_names 1 and '1' (equal as strings)", _str_collision, lambda a, m, t: P.prepare(a)),
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
            "a folder that ships its own Python module",
            same,
            lambda a, m, t: mmc.models.load(_damaged_model(t, m, "code")),
        ),
        Case(
            "models.save_model",
            "a path that is an existing file",
            same,
            lambda a, m, t: mmc.models.save_model(m, _a_file(t)),
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
    model = shared_model()
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
        "The error types a user can meet, and the shared code that raises each:",
        "",
        "| error | when | raised by |",
        "|---|---|---|",
        "| `MMContextKeyError` (`KeyError`, `ValueError`) | an obs column, obsm key or layer that does not exist; "
        "the message names the closest keys | `_validation.get_obsm`, `get_obs_column`, `get_layer` |",
        "| `MMContextOverwriteError` (`ValueError`) | `key_added=` names an obs column / obsm key mmcontext did not "
        "write (or wrote as another kind of result); pass `overwrite=True` | `_validation.check_outputs` |",
        "| `TypeError` | an argument of the wrong kind: a number as queries, a string as a number, `1.5` as a count, "
        "a path where a model or head is expected | `check_texts`, `check_number`, `check_model`, `check_trained` |",
        "| `ValueError` | a value out of range, NaN/inf rows, raw counts, duplicated names (also once converted to "
        "strings), an untrained head, a continuous column used as text, a view to write into | `check_number`, "
        "`check_finite`, `check_unique_names`, `check_trained`, `check_text_column`, `check_writable` |",
        "| `UntrustedModelError` (`ValueError`) | a model folder names a module class outside sentence-transformers "
        "and mmcontext; pass `trust_remote_code=True` only if you trust it | `models.MMContextEncoder` |",
        "| `FileNotFoundError` / `ValueError` | a model folder that is missing, partly written or corrupted | "
        "`_validation.check_model_folder` |",
        "| `FileExistsError` | a model or store would be written over an existing file | `_io.refuse_file` |",
        "| `StoreIntegrityError` (`ValueError`) | an embedding store whose files do not match its manifest | "
        "`data.EmbeddingStore` |",
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
