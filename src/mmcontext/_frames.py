"""Cells x names DataFrames in ``obsm`` whose column names HDF5 accepts; the original names kept in ``uns``.

Label names such as ``"CD4+/CD25 T Reg"`` cannot name an h5 column ('/' separates groups; anndata warns and will
refuse them). :func:`write_frame` stores such a frame with safe column names and the original names in
``uns['mmcontext']['columns'][key]``; :func:`read_frame` gives the frame back with the original names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import _keys

if TYPE_CHECKING:
    from anndata import AnnData

#: ``uns['mmcontext']`` entry mapping an ``obsm`` key to the original column names of its DataFrame.
COLUMNS = "columns"


def h5_safe_names(names: Sequence[str]) -> list[str]:
    """``names`` with every '/' replaced by '_' (and a numeric suffix where that would repeat a name)."""
    out: list[str] = []
    seen: set[str] = set()
    for name in (str(n) for n in names):
        safe = name.replace("/", "_")
        base, i = safe, 1
        while safe in seen:
            i += 1
            safe = f"{base}_{i}"
        seen.add(safe)
        out.append(safe)
    return out


def write_frame(adata: AnnData, key: str, values: np.ndarray, names: Sequence[str]) -> None:
    """``adata.obsm[key] = DataFrame(values, columns=<h5-safe names>)``; ``names`` kept in ``uns`` when they differ."""
    names = [str(n) for n in names]
    safe = h5_safe_names(names)
    adata.obsm[key] = pd.DataFrame(values, index=adata.obs_names, columns=safe)
    store = adata.uns.setdefault(_keys.UNS, {}).setdefault(COLUMNS, {})
    if safe != names:
        store[key] = names
    else:
        store.pop(key, None)


def read_frame(adata: AnnData, key: str) -> pd.DataFrame:
    """``adata.obsm[key]`` as a DataFrame with its original column names (see :func:`write_frame`)."""
    frame = adata.obsm[key]
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"adata.obsm[{key!r}] is a {type(frame).__name__}, not a DataFrame of scores.")
    names = adata.uns.get(_keys.UNS, {}).get(COLUMNS, {}).get(key)
    if names is not None and len(names) == frame.shape[1] and list(h5_safe_names(names)) == list(frame.columns):
        frame = frame.copy()
        frame.columns = [str(n) for n in names]
    return frame
