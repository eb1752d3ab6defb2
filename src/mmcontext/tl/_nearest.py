"""The k cells nearest to query vectors: exact, or through a saved index, with ``obs`` filters.

The search machinery under :func:`mmcontext.tl.search` and :func:`mmcontext.tl.search_cells`.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._errors import StaleIndexError
from .._validation import MMContextKeyError, _closest
from ..data._topk import DEFAULT_CHUNK_SIZE, top_k
from ._index import CellIndex, embedding_fingerprint, get_vectors, load_index

if TYPE_CHECKING:
    from anndata import AnnData


#: With an approximate index and ``obs_filter``, filters selecting at most this many cells (or under
#: :data:`EXACT_FRACTION` of them) are searched exactly over the selected cells instead of post-filtering.
EXACT_SUBSET = 200_000
EXACT_FRACTION = 0.05


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer (cells returned per query), got {k!r}.")
    return int(k)


def filter_mask(adata: AnnData, obs_filter: Any) -> np.ndarray | None:
    """``obs_filter`` as a boolean mask over the cells (``None`` keeps every cell).

    A dict ``{obs column: value or values}`` (every entry must hold), or a boolean mask / Series over ``obs_names``.
    """
    if obs_filter is None:
        return None
    if isinstance(obs_filter, dict):
        if not obs_filter:
            raise ValueError("obs_filter is an empty dict; pass {obs column: value(s)} or leave it out.")
        mask = np.ones(adata.n_obs, dtype=bool)
        for column, values in obs_filter.items():
            if column not in adata.obs.columns:
                hint = _closest(column, adata.obs.columns)
                raise MMContextKeyError(f"obs_filter names adata.obs[{column!r}], which does not exist.{hint}")
            wanted = list(values) if isinstance(values, (list, tuple, set, np.ndarray, pd.Index)) else [values]
            mask &= adata.obs[column].isin(wanted).to_numpy()
        if not mask.any():
            raise ValueError(f"obs_filter={obs_filter!r} selects no cells; check the values against adata.obs.")
        return mask
    if isinstance(obs_filter, pd.Series):
        obs_filter = obs_filter.reindex(adata.obs_names) if not obs_filter.index.equals(adata.obs_names) else obs_filter
    mask = np.asarray(obs_filter)
    if mask.dtype != bool or mask.shape != (adata.n_obs,):
        raise ValueError(
            f"obs_filter must be a dict {{obs column: value(s)}} or a boolean mask of shape ({adata.n_obs},), got "
            f"dtype {mask.dtype} and shape {mask.shape}."
        )
    if not mask.any():
        raise ValueError("obs_filter selects no cells.")
    return mask


def resolve_index(index: Any) -> CellIndex | None:
    """``index`` as a :class:`CellIndex`: an index object, a saved index folder (loaded), or None (exact search)."""
    if index is None or isinstance(index, CellIndex):
        return index
    if isinstance(index, (str, os.PathLike)):
        return load_index(index)
    raise TypeError(
        f"index must be a CellIndex (mmc.tl.build_index), an index folder or None, got {type(index).__name__}."
    )


def _exact(adata: AnnData, use_rep: str, queries: np.ndarray, k: int, rows: np.ndarray | None, chunk: int):
    return top_k(get_vectors(adata, use_rep), queries, k, rows=rows, chunk_size=chunk)


def nearest(
    adata: AnnData,
    queries: np.ndarray,
    *,
    k: int,
    index: CellIndex | None,
    use_rep: str,
    mask: np.ndarray | None,
    fingerprint: str | None,
    exclude: np.ndarray | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Positions and scores of each query vector's ``k`` best cells among ``mask`` minus ``exclude``; the method."""
    if exclude is not None and len(exclude):
        mask = np.ones(adata.n_obs, dtype=bool) if mask is None else mask.copy()
        mask[exclude] = False
        if not mask.any():
            raise ValueError("No cells are left to search once the query cells are excluded.")
    rows = None if mask is None else np.flatnonzero(mask)
    recorded = embedding_fingerprint(adata, use_rep)
    if index is None:
        if fingerprint is not None and recorded is not None and recorded != fingerprint:
            raise StaleIndexError(
                f"adata.obsm[{use_rep!r}] was embedded by model {recorded}, not by this model ({fingerprint}); "
                "run `mmc.tl.embed(adata, model)` first."
            )
        pos, scores = _exact(adata, use_rep, queries, k, rows, chunk_size)
        return pos, scores, "exact"
    index.check(adata, key=use_rep, model_fingerprint=fingerprint or recorded)
    if index.method == "exact":
        pos, scores = top_k(index.backend.vectors, queries, k, rows=rows, chunk_size=chunk_size)
        return pos, scores, "exact"
    if rows is None:
        pos, scores = index.search(queries, k)
        return pos, scores, index.method
    if len(rows) <= EXACT_SUBSET or len(rows) < EXACT_FRACTION * adata.n_obs:
        pos, scores = _exact(adata, use_rep, queries, k, rows, chunk_size)
        return pos, scores, "exact"
    wide = min(adata.n_obs, math.ceil(1.5 * k * adata.n_obs / len(rows)) + 10)
    pos, scores = index.search(queries, wide)
    keep = (pos >= 0) & mask[np.clip(pos, 0, None)]
    n_kept = keep.sum(axis=1)
    if (n_kept < min(k, len(rows))).any():  # the filter left too few of the candidates: score the subset exactly
        pos, scores = _exact(adata, use_rep, queries, k, rows, chunk_size)
        return pos, scores, "exact"
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # the kept candidates, in the index's order
    return np.take_along_axis(pos, order, axis=1), np.take_along_axis(scores, order, axis=1), index.method
