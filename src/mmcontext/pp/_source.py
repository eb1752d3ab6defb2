"""Which expression matrix an initial embedding is built from: ``X``, a layer, or ``raw`` behind a scaled ``X``.

A standard scanpy workflow leaves ``adata.X`` scaled (``sc.pp.scale``: negative values, centred genes) and the
log-normalised matrix in ``adata.raw``. Every path that builds the model's input from expression
(:func:`mmcontext.pp.prepare`, ``prepare(reference=)``, streamed :func:`mmcontext.tl.embed`) reads through
:func:`expression_source`, so they all use ``raw`` in that case, and all log-normalise raw counts on request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

from .._logging import logger
from .._validation import check_counts, check_log_normalised, get_layer, looks_like_counts, looks_scaled

if TYPE_CHECKING:
    from anndata import AnnData

#: Total counts per cell that ``normalize=True`` scales each cell to before ``log1p`` (scanpy's usual choice).
TARGET_SUM = 1e4


@dataclass
class ExpressionSource:
    """An expression matrix and the gene names of its columns.

    Attributes
    ----------
    X
        Cells x genes (numpy, scipy sparse, or a backed dataset), as stored: not yet normalised.
    var_names
        Gene names of the columns of ``X``.
    what
        ``"adata.X"``, ``"adata.raw.X"`` or ``"adata.layers['name']"``, for messages and ``uns``.
    normalize
        Whether rows are log-normalised (:func:`lognormalise`) before use.

    """

    X: Any
    var_names: pd.Index
    what: str
    normalize: bool = False

    @property
    def used_raw(self) -> bool:
        """Whether ``adata.raw`` was read because ``adata.X`` looks scaled."""
        return self.what == "adata.raw.X"

    def rows(self, rows: Any) -> Any:
        """``rows`` of :attr:`X` as the model reads them: log-normalised when :attr:`normalize` is set."""
        return lognormalise(rows) if self.normalize else rows

    def record(self) -> dict[str, Any]:
        """The ``uns`` fields that say where the expression came from."""
        return {"source": self.what, "used_raw": self.used_raw, "normalize": self.normalize}


def lognormalise(X: Any, *, target_sum: float = TARGET_SUM) -> Any:
    """``log1p(target_sum * counts / total counts per cell)`` of a count matrix (a new matrix, float32)."""
    if sparse.issparse(X):
        X = sparse.csr_matrix(X, dtype=np.float32, copy=True)
        totals = np.asarray(X.sum(axis=1)).ravel()
        factor = np.where(totals > 0, target_sum / np.maximum(totals, 1e-12), 0.0).astype(np.float32)
        X = sparse.csr_matrix(sparse.diags(factor) @ X)
        X.data = np.log1p(X.data)
        return X
    X = np.asarray(X, dtype=np.float32)
    totals = X.sum(axis=1, keepdims=True)
    return np.log1p(X * np.where(totals > 0, target_sum / np.maximum(totals, 1e-12), 0.0)).astype(np.float32)


def _raw_is_usable(adata: AnnData) -> bool:
    raw = getattr(adata, "raw", None)
    if raw is None or raw.X is None or raw.n_vars == 0:
        return False
    head = raw.X[: min(2000, adata.n_obs)]
    values = head.data if sparse.issparse(head) else np.asarray(head)
    return bool(values.size == 0 or float(np.min(values)) >= 0)


def expression_source(
    adata: AnnData, layer: str | None = None, *, normalize: bool = False, quiet: bool = False
) -> ExpressionSource:
    """The expression matrix a gene panel or PCA is built from, checked.

    - ``layer`` given: that layer.
    - else ``adata.X``; but when it looks scaled (negative values, genes centred) and ``adata.raw`` holds
      non-negative expression of the same cells, ``adata.raw.X`` (with ``adata.raw.var_names``), with one log line.
    - ``normalize=True``: the matrix must hold raw counts (non-negative integers); rows are log-normalised
      (:func:`lognormalise`) before use. Otherwise raw counts are an error that says so.

    Parameters
    ----------
    adata
        Annotated data matrix.
    layer
        Expression layer instead of ``adata.X`` (``raw`` is then never substituted).
    normalize
        Log-normalise raw counts (``normalize_total`` to :data:`TARGET_SUM`, then ``log1p``).
    quiet
        Do not log which matrix was chosen.

    Returns
    -------
    An :class:`ExpressionSource`.

    """
    X, what = get_layer(adata, layer)
    var_names = pd.Index(np.asarray(adata.var_names).astype(str))
    if X is None:
        raise ValueError(f"{what} is empty; pass `layer=` or `use_rep=`.")
    if layer is None and looks_scaled(X) and _raw_is_usable(adata):
        X, what = adata.raw.X, "adata.raw.X"
        var_names = pd.Index(np.asarray(adata.raw.var_names).astype(str))
        if not quiet:
            logger.info(
                "adata.X looks scaled (negative values, centred genes): reading the expression from adata.raw.X "
                "(%d genes) instead; pass `layer=` to choose another matrix",
                len(var_names),
            )
    head = X[: min(2000, X.shape[0])]
    if normalize:
        check_counts(head, what=what)
        if not quiet:
            logger.info("log-normalising the counts of %s (normalize_total to %g, log1p)", what, TARGET_SUM)
    elif looks_like_counts(head):
        check_log_normalised(head, what=what)
    return ExpressionSource(X, var_names, what, normalize=bool(normalize))
