"""Writing an AnnData's initial embeddings to an embedding store (the AnnData-facing form of the store writer)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .._validation import check_adata, get_obsm
from ..data import _store
from ._prepare import init_key

if TYPE_CHECKING:
    from anndata import AnnData

    from ..data import EmbeddingStore


def write_store(
    adata: AnnData | np.ndarray,
    path: str | os.PathLike,
    *,
    use_rep: str | None = None,
    name: str | None = None,
    ids: Sequence[str] | None = None,
    overwrite: bool = False,
) -> EmbeddingStore:
    """Write the initial embeddings of ``adata`` to a memory-mappable store folder.

    The folder is written next to ``path`` under a temporary name and moved into place with
    ``os.replace``, so an interrupted write never leaves a half-written store at ``path``. Writing
    the same content again to an existing store is a no-op (the content hash is compared).

    Parameters
    ----------
    adata
        AnnData whose ``obsm[use_rep]`` (and ``obs_names`` as ids) are stored; or a
        ``(n_cells, dim)`` matrix, then with ``ids=``.
    path
        Store folder to create.
    use_rep
        ``obsm`` key of the initial embedding; default: the one :func:`mmcontext.pp.prepare` recorded.
    name
        Store name used in cell references ``"<name>:<cell id>"``; default: the folder name.
    ids
        Cell ids when ``adata`` is a matrix.
    overwrite
        Replace an existing store with different content (otherwise an error).

    Returns
    -------
    The opened :class:`~mmcontext.models.EmbeddingStore`. Writes ``vectors.npy``, ``ids.npy``,
    ``rows.npy`` and ``manifest.json`` under ``path``; ``adata`` is not changed.

    Examples
    --------
    >>> store = mmc.models.write_store(adata, "stores/pbmc")  # doctest: +SKIP

    """
    from anndata import AnnData

    if isinstance(adata, AnnData):
        check_adata(adata)
        key = init_key(adata, use_rep)
        X = get_obsm(adata, key, hint=" Run `mmc.pp.prepare(adata)` or pass `use_rep=`.")
        ids = adata.obs_names.astype(str).tolist()
    else:
        if ids is None:
            raise ValueError("Pass `ids=` (one cell id per row) when writing a store from a matrix.")
        X = adata
    return _store.write_store(X, ids, path, name=name, overwrite=overwrite)
