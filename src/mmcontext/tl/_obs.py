"""Writing result columns into ``adata.obs``: all of a call's columns at once, as one block."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from anndata import AnnData


def write_obs_columns(adata: AnnData, names: Sequence[str], values: np.ndarray, *, drop: Sequence[str] = ()) -> None:
    """Put ``values`` (cells x ``names``) into ``adata.obs`` as columns ``names``, replacing same-named columns.

    All columns join in one concatenation (one block, no fragmented frame); columns in ``drop`` are removed too.
    Without another ``obs`` column of the same dtype the block joins without a copy. With one, ``copy=True``:
    pandas then keeps each block as it is, where ``copy=False`` would merge all blocks of that dtype into one
    (a copy of every such column, about 10x slower at a million cells and a hundred columns).
    """
    import pandas as pd

    names = list(names)
    values = np.asarray(values)
    if values.shape != (adata.n_obs, len(names)):
        raise ValueError(f"values of shape {values.shape} for {len(names)} obs columns of {adata.n_obs} cells.")
    clash = adata.obs.columns.isin([*names, *drop])
    kept = adata.obs.loc[:, ~clash] if clash.any() else adata.obs
    if not names:  # only columns to drop: no concatenation (which would copy every float column of obs)
        if clash.any():
            adata.obs = kept
        return
    new = pd.DataFrame(values, index=adata.obs.index, columns=names, copy=False)
    same_dtype = any(dtype == values.dtype for dtype in kept.dtypes)
    adata.obs = pd.concat([kept, new], axis=1, copy=same_dtype)
