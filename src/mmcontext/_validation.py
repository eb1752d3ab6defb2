"""Input checks shared by every public function.

Each check raises before anything is written, with a message naming the key, column or shape
that is wrong and how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

if TYPE_CHECKING:
    from anndata import AnnData


def _closest(key: str, options: Iterable[str]) -> str:
    options = [str(o) for o in options]
    close = difflib.get_close_matches(key, options, n=3, cutoff=0.5)
    if close:
        return f" Did you mean {', '.join(repr(c) for c in close)}?"
    return f" Available: {options[:20]!r}." if options else " There are none."


def check_adata(adata: Any, *, min_obs: int = 1) -> None:
    """Check that ``adata`` is a usable AnnData: the right type, enough cells, unique ``obs_names``."""
    from anndata import AnnData

    if not isinstance(adata, AnnData):
        raise TypeError(f"Expected an AnnData object, got {type(adata).__name__}.")
    if adata.n_obs < min_obs:
        raise ValueError(f"The AnnData has {adata.n_obs} cells (shape {adata.shape}); at least {min_obs} needed.")
    if not adata.obs_names.is_unique:
        dup = adata.obs_names[adata.obs_names.duplicated()][:3].tolist()
        raise ValueError(
            f"adata.obs_names are not unique (e.g. {dup!r}); cells are referenced by name. "
            "Run `adata.obs_names_make_unique()` first."
        )


def check_writable(adata: AnnData, *, copy: bool) -> None:
    """Refuse to write into a view (it would silently copy) or a read-only backed AnnData."""
    if copy:
        return
    if adata.is_view:
        raise ValueError(
            "The AnnData is a view (e.g. `adata[mask]`); results cannot be written into it. "
            "Pass `adata[mask].copy()` or `copy=True`."
        )
    if adata.isbacked and getattr(adata.file, "_filemode", "r") == "r":
        raise ValueError("The AnnData is backed read-only; open it with `backed='r+'` or pass `copy=True`.")


def check_finite(X: np.ndarray, *, what: str) -> None:
    """Raise if ``X`` holds NaN or infinite values, naming how many rows are affected."""
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise ValueError(
            f"{what} has NaN or infinite values in {len(rows)} of {X.shape[0]} rows (first rows: {rows[:5].tolist()}). "
            "Remove or impute those cells first."
        )


def as_float_matrix(X: Any, *, what: str) -> np.ndarray:
    """Return ``X`` as a dense 2-D float32 array, checking type, shape and finiteness."""
    if isinstance(X, pd.DataFrame):
        X = X.to_numpy()
    if sparse.issparse(X):
        X = X.toarray()
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be numeric, got dtype {X.dtype}.")
    if X.ndim != 2:
        raise ValueError(f"{what} must be 2-D (cells x features), got shape {X.shape}.")
    if X.shape[1] == 0:
        raise ValueError(f"{what} has 0 features (shape {X.shape}).")
    X = X.astype(np.float32, copy=False)
    check_finite(X, what=what)
    return X


def get_obsm(adata: AnnData, key: str, *, hint: str = "") -> np.ndarray:
    """Return ``adata.obsm[key]`` as checked float32, or raise naming the closest existing keys."""
    if key not in adata.obsm:
        raise KeyError(f"adata.obsm[{key!r}] not found.{_closest(key, adata.obsm.keys())}{hint}")
    return as_float_matrix(adata.obsm[key], what=f"adata.obsm[{key!r}]")


def get_obs_column(adata: AnnData, key: str) -> pd.Series:
    """Return ``adata.obs[key]``, or raise naming the closest existing columns."""
    if key not in adata.obs.columns:
        raise KeyError(f"adata.obs[{key!r}] not found.{_closest(key, adata.obs.columns)}")
    return adata.obs[key]


def check_texts(texts: Any, *, what: str) -> list[str]:
    """Return ``texts`` as a non-empty list of non-empty strings (a single string becomes a list)."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise ValueError(f"{what} is empty; pass at least one text.")
    for t in texts:
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"{what} must be non-empty strings, got {t!r}.")
    return texts


def check_dim(n_features: int, expected: int, *, what: str, fix: str) -> None:
    """Raise if an input has ``n_features`` columns where the model expects ``expected``."""
    if n_features != expected:
        raise ValueError(f"{what} has {n_features} features but the model expects {expected}. {fix}")
