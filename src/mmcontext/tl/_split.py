"""Which cells trained a model: ``obs['mmc_split']`` and ``uns['mmcontext']['train']``, also on the full AnnData.

:func:`mmcontext.tl.train` marks its own AnnData. A model trained on a subset copy (``adata[train].copy()``) keeps
the names of its training and validation cells, so :func:`mmcontext.tl.embed` on the full AnnData marks the same
cells there and every other cell as ``"unseen"``; plots then tell held-out cells from training ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import _keys

if TYPE_CHECKING:
    from anndata import AnnData

    from ..models import MMContextEncoder

#: Categories of ``obs['mmc_split']``: gradient steps, validation (calibration, early stopping), never seen.
SPLIT_CATEGORIES = ("train", "validation", "unseen")


def split_column(n_obs: int, train: np.ndarray, validation: np.ndarray) -> pd.Categorical:
    """``"train"`` / ``"validation"`` for the cells at these positions, ``"unseen"`` for the other of ``n_obs``."""
    codes = np.full(n_obs, 2, dtype=np.int8)
    codes[validation] = 1
    codes[train] = 0
    return pd.Categorical.from_codes(codes, categories=list(SPLIT_CATEGORIES))


def remember_split(model: MMContextEncoder, adata: AnnData, train_cells: np.ndarray, val_cells: np.ndarray) -> dict:
    """Mark ``adata.obs['mmc_split']``, keep the cells' names with the model; return the counts for ``uns``."""
    names = adata.obs_names.to_numpy().astype(str)
    model.mmc_split = {"train": names[train_cells], "validation": names[val_cells]}
    adata.obs[_keys.SPLIT] = split_column(adata.n_obs, train_cells, val_cells)  # rows of this AnnData: no lookup
    return split_counts(adata.obs[_keys.SPLIT])


def split_counts(column: pd.Series | pd.Categorical) -> dict[str, Any]:
    counts = pd.Series(column).value_counts()
    return {"split_key": _keys.SPLIT, **{f"n_{c}": int(counts.get(c, 0)) for c in SPLIT_CATEGORIES}}


def mark_split(adata: AnnData, model: MMContextEncoder) -> bool:
    """Mark ``adata.obs['mmc_split']`` from the cells ``model`` was trained on, when ``adata`` holds all of them.

    Also copies the model's training record into ``adata.uns['mmcontext']['train']`` (with this AnnData's counts).
    Returns whether it marked anything (models loaded from disk, or data without the training cells: no).
    """
    split = getattr(model, "mmc_split", None)
    if not split:
        return False
    train = adata.obs_names.get_indexer(pd.Index(split["train"]))
    val = adata.obs_names.get_indexer(pd.Index(split["validation"]))
    if not (train >= 0).all() or not (val >= 0).all():
        return False  # another dataset (or part of the training data): nothing to say about its cells
    from .._provenance import record

    adata.obs[_keys.SPLIT] = split_column(adata.n_obs, train, val)
    params = {k: v for k, v in (getattr(model, "mmc_training", None) or {}).items() if k not in ("time", "versions")}
    record(adata, "train", {**params, **split_counts(adata.obs[_keys.SPLIT])})
    return True
