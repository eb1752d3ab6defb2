"""Supervised targets read from ``obs``: class indices, multi-label indicator matrices, values; cell masks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._validation import get_obs_column

if TYPE_CHECKING:
    from anndata import AnnData


def cell_mask(adata: AnnData, train_mask: str | Sequence[bool] | np.ndarray | None) -> np.ndarray:
    """The cells ``train_mask`` selects (a boolean array or obs column); all cells for ``None``."""
    if train_mask is None:
        return np.ones(adata.n_obs, dtype=bool)
    if isinstance(train_mask, str):
        col = get_obs_column(adata, train_mask)
        if col.dtype != bool:
            raise TypeError(f"adata.obs[{train_mask!r}] must be boolean to serve as train_mask, got {col.dtype}.")
        return col.to_numpy()
    mask = np.asarray(train_mask)
    if mask.dtype != bool or mask.shape != (adata.n_obs,):
        raise ValueError(
            f"train_mask must be a boolean array of length n_obs={adata.n_obs}, got {mask.dtype} {mask.shape}."
        )
    return mask


def targets(
    adata: AnnData, label_key: str | Sequence[str], task: str, sep: str, classes: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Return (targets, labelled mask, classes) for ``task``."""
    if task == "multilabel":
        if isinstance(label_key, str):
            col = get_obs_column(adata, label_key)
            labelled = col.notna().to_numpy()
            sets = [
                set(filter(None, (s.strip() for s in str(v).split(sep)))) if ok else set()
                for v, ok in zip(col.astype(object), labelled, strict=True)
            ]
            names = sorted(set().union(*sets)) if classes is None else list(classes)
            Y = np.array([[n in s for n in names] for s in sets], dtype=np.float32).reshape(len(sets), len(names))
            return Y, labelled, names
        cols = [get_obs_column(adata, k) for k in label_key]
        for k, c in zip(label_key, cols, strict=True):
            if c.dtype != bool and not (pd.api.types.is_numeric_dtype(c) and c.dropna().isin([0, 1]).all()):
                raise TypeError(f"adata.obs[{k!r}] must be boolean or 0/1 for a multilabel task, got {c.dtype}.")
        labelled = np.logical_and.reduce([c.notna().to_numpy() for c in cols])
        Y = np.stack([c.fillna(0).astype(np.float32).to_numpy() for c in cols], axis=1)
        return Y, labelled, [str(k) for k in label_key]
    if not isinstance(label_key, str):
        raise TypeError(f"label_key must be one obs column for task={task!r}; a list is only for task='multilabel'.")
    col = get_obs_column(adata, label_key)
    labelled = col.notna().to_numpy()
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(col):
            raise TypeError(
                f"adata.obs[{label_key!r}] must be numeric for task='regression', got {col.dtype}; "
                "use task='classification' for categories."
            )
        return col.to_numpy(dtype=np.float32, na_value=np.nan), labelled, []
    values = col.astype(object).where(col.notna(), None).to_numpy()
    if classes is None:
        cats = col.cat.categories if isinstance(col.dtype, pd.CategoricalDtype) else pd.unique(col.dropna())
        classes = [str(c) for c in cats]
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index.get(str(v), -1) if ok else -1 for v, ok in zip(values, labelled, strict=True)])
    return y, labelled, list(classes)
