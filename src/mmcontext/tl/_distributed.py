"""Embedding a dask-backed AnnData block by block (``map_blocks``), so a ``dask.distributed`` cluster spreads it.

Only the omics tower (a copy, in eval mode) travels to the workers; each block runs the same code as the in-memory
path (:func:`mmcontext.models._encoder.encode_omics`, and :func:`mmcontext.pp._reference.project` for ``use_rep="X"``),
so the rows equal the in-memory result whatever the chunking.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..models import MMContextEncoder

#: Blocks computed together when a lazy embedding is written to a file or collected in memory.
BLOCKS_AT_ONCE = 8


def _encode_block(block: Any, *, omics: Any, batch_size: int, what: str) -> np.ndarray:
    from .._validation import as_float_matrix
    from ..models._encoder import encode_omics

    return encode_omics(omics, as_float_matrix(block, what=what), batch_size=batch_size)


def _project_encode_block(
    block: Any, *, omics: Any, batch_size: int, var_names: Any, space: Any, fill: str, what: str, block_info=None
) -> np.ndarray:
    from scipy import sparse

    from .._validation import check_expression_values
    from ..models._encoder import encode_omics
    from ..pp._reference import project

    rows = block.tocsr() if sparse.issparse(block) and block.format != "csr" else block
    check_expression_values(rows, what=what, start=block_info[0]["array-location"][0][0] if block_info else None)
    init, _ = project(rows, var_names, space, fill=fill)
    return encode_omics(omics, init, batch_size=batch_size)


def lazy_embedding(
    X: Any,
    model: MMContextEncoder,
    *,
    batch_size: int,
    what: str,
    space: Any = None,
    var_names: Any = None,
    fill: str = "mean",
) -> Any:
    """The joint embedding of the rows of the dask array ``X`` as a lazy dask array (cells x embedding dim).

    ``X`` is the initial embedding, or with ``space`` the expression by ``var_names`` (rebuilt into the model's
    gene panel / PCA space per block).
    """
    omics = copy.deepcopy(model.omics_encoder).eval()  # the user's model keeps its mode; workers get a copy
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})  # whole rows in every block
    kwargs: dict[str, Any] = {"omics": omics, "batch_size": batch_size, "what": what}
    func = _encode_block
    if space is not None:
        func = _project_encode_block
        kwargs.update(var_names=np.asarray(var_names).astype(str), space=space, fill=fill)
    dim = model.omics_encoder.output_dim
    return X.map_blocks(
        func, dtype=np.float32, chunks=(X.chunks[0], (dim,)), meta=np.empty((0, 0), np.float32), **kwargs
    )


def computed_blocks(lazy: Any, *, at_once: int = BLOCKS_AT_ONCE) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, rows)`` of a lazy row-chunked array, computed ``at_once`` blocks at a time (in parallel), in order."""
    import dask

    blocks = [lazy.blocks[i] for i in range(lazy.numblocks[0])]
    start = 0
    for g in range(0, len(blocks), at_once):
        for rows in dask.compute(*blocks[g : g + at_once]):
            yield start, np.asarray(rows, dtype=np.float32)
            start += len(rows)
