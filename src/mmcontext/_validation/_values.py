"""Checks of matrix values: finite, floats, raw counts vs log-normalised vs scaled expression."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse


def all_finite(data: np.ndarray) -> bool:
    """Whether every value of ``data`` is finite: one float64 sum, no mask (a mask only if the sum overflows)."""
    with np.errstate(over="ignore", invalid="ignore"):
        total = data.sum(dtype=np.float64)
    return bool(np.isfinite(total)) or bool(np.isfinite(data).all())


def check_expression_values(X: Any, *, what: str, fix: str = "clean the data first", start: int | None = None) -> None:
    """Raise if the expression matrix ``X`` (dense or sparse, in memory) is non-numeric or holds NaN/inf values.

    ``X`` may be a row chunk of a larger matrix starting at row ``start``; the message then names the first bad row.
    """
    data = X.data if sparse.issparse(X) else np.asarray(X)
    if data.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be numeric, got dtype {data.dtype}.")
    if not all_finite(data):
        where = ""
        if start is not None and sparse.issparse(X) and X.format == "csr":
            first = int(np.flatnonzero(~np.isfinite(data))[0])
            where = f" (first in row {start + int(np.searchsorted(X.indptr, first, side='right')) - 1})"
        elif start is not None and not sparse.issparse(X):
            where = f" (first in row {start + int(np.flatnonzero(~np.isfinite(data).all(axis=1))[0])})"
        raise ValueError(f"{what} has NaN or infinite values{where}; {fix}.")


def check_finite(X: np.ndarray, *, what: str) -> None:
    """Raise if ``X`` holds NaN or infinite values, naming how many rows are affected."""
    if all_finite(X):
        return
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


def looks_like_counts(X: Any, *, max_rows: int = 2000) -> bool:
    """Whether ``X`` looks like raw counts: non-negative integers with a maximum above 20 (on a row sample)."""
    rows = X[:max_rows]
    data = rows.data if sparse.issparse(rows) else np.asarray(rows)
    data = np.asarray(data)
    if data.size == 0 or data.dtype.kind not in "biuf":
        return False
    if data.dtype.kind == "f":
        finite = data[np.isfinite(data)]
        if finite.size == 0 or not np.array_equal(finite, np.round(finite)):
            return False
        data = finite
    return bool(data.min() >= 0 and data.max() > 20)


def check_log_normalised(X: Any, *, what: str) -> None:
    """Raise if ``X`` holds raw counts where log-normalised values are expected."""
    if looks_like_counts(X):
        raise ValueError(
            f"{what} looks like raw counts (non-negative integers up to {_max(X):g}); this method expects "
            "log-normalised values. Pass `normalize=True` to log-normalise them on the fly, run "
            "`sc.pp.normalize_total(adata); sc.pp.log1p(adata)` first, or pass a log-normalised `layer=`."
        )


def looks_scaled(X: Any, *, max_rows: int = 2000) -> bool:
    """Whether ``X`` looks scaled (``sc.pp.scale``): negative values and genes centred near 0 (on a row sample)."""
    rows = X[:max_rows]
    rows = rows.toarray() if sparse.issparse(rows) else np.asarray(rows)
    if rows.size == 0 or rows.dtype.kind not in "biuf" or not float(np.nanmin(rows)) < 0:
        return False
    mean, std = np.nanmean(rows, axis=0), np.nanstd(rows, axis=0)
    spread = std > 0
    if not spread.any():
        return False
    return bool(np.median(np.abs(mean[spread]) / std[spread]) < 0.25)


def warn_if_scaled(X: Any, *, what: str) -> None:
    """Log a warning when a gene panel is read from a matrix with negative values (scaled, not log-normalised)."""
    from .._logging import logger

    values = X.data if sparse.issparse(X) else np.asarray(X)
    if values.size and float(values.min()) < 0:
        logger.warning(
            "%s has negative values: it looks scaled (sc.pp.scale), but the gene panel expects log-normalised "
            "expression, which also keeps new data projectable by gene name. Pass `layer=` (or put the log-normalised "
            "matrix, e.g. `adata.raw.to_adata().X`, in X); mmc.datasets.pbmc68k_reduced() already does.",
            what,
        )


def check_counts(X: Any, *, what: str) -> None:
    """Raise if ``X`` is not raw counts (negative or non-integer values) where counts are expected."""
    rows = X[:2000]
    data = np.asarray(rows.data if sparse.issparse(rows) else rows)
    if data.size and (data.min() < 0 or not np.array_equal(data, np.round(data))):
        raise ValueError(
            f"{what} holds negative or non-integer values; this method expects raw counts. "
            "Pass the counts with `layer=` (e.g. a 'counts' layer kept before normalisation)."
        )


def _max(X: Any) -> float:
    return float(X.max()) if sparse.issparse(X) else float(np.nanmax(np.asarray(X)))
