"""Exact top-k inner products between query vectors and many cell vectors, a row chunk at a time.

Only ``n_queries x chunk_size`` float32 scores exist at once: each chunk is scored with one matrix product and cut
to its own top k with ``np.argpartition``, and the survivors are merged with the running best. Dask arrays are
scored block by block with ``map_blocks`` (a ``dask.distributed`` cluster spreads the blocks over its workers).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Cells scored per matrix product by :func:`top_k` (memory: n_queries x this x 4 bytes).
DEFAULT_CHUNK_SIZE = 65_536


def is_dask(X: Any) -> bool:
    """Whether ``X`` is a dask array (without importing dask when it is not installed or not in use)."""
    return type(X).__module__.split(".")[0] == "dask" and hasattr(X, "map_blocks")


def _cut(scores: np.ndarray, positions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep each row's ``k`` highest ``scores`` (unordered) with their ``positions`` (same shape as ``scores``)."""
    if scores.shape[1] <= k:
        return scores, positions
    part = np.argpartition(scores, scores.shape[1] - k, axis=1)[:, -k:]
    return np.take_along_axis(scores, part, axis=1), np.take_along_axis(positions, part, axis=1)


def _ordered(scores: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by descending score, ties by ascending position (the same order however the rows were cut)."""
    order = np.lexsort((positions, -scores), axis=1)
    return np.take_along_axis(positions, order, axis=1), np.take_along_axis(scores, order, axis=1)


def top_k(
    cells: Any,
    queries: np.ndarray,
    k: int,
    *,
    rows: np.ndarray | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` cells with the highest inner product with each query, best first.

    Parameters
    ----------
    cells
        Cells x dim array: numpy, a memory map (``np.load(path, mmap_mode="r")``) or a dask array.
    queries
        Queries x dim float32 array.
    k
        Cells per query; fewer when fewer cells are scored.
    rows
        Positions of the cells to score (sorted); default: all.
    chunk_size
        Cells scored per matrix product.

    Returns
    -------
    ``(positions, scores)``: int64 row positions in ``cells`` and their float32 scores, both queries x k.

    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if is_dask(cells):
        return _dask_top_k(cells, queries, k, rows=rows)
    n = len(cells) if rows is None else len(rows)
    k = min(int(k), n)
    best_s = np.empty((len(queries), 0), dtype=np.float32)
    best_i = np.empty((len(queries), 0), dtype=np.int64)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        if rows is None:
            block, pos = cells[start:stop], np.arange(start, stop, dtype=np.int64)
        else:
            pos = np.asarray(rows[start:stop], dtype=np.int64)
            block = cells[pos]
        scores = queries @ np.asarray(block, dtype=np.float32).T
        s, i = _cut(scores, np.broadcast_to(pos, scores.shape), k)
        best_s, best_i = _cut(np.concatenate([best_s, s], axis=1), np.concatenate([best_i, i], axis=1), k)
    return _ordered(best_s, best_i)


def _block_top_k(
    block: np.ndarray, *, queries: np.ndarray, k: int, mask: np.ndarray | None, block_info=None
) -> np.ndarray:
    """One dask block's top k, packed as ``(1, n_queries, 2k)`` float64: k scores then k global positions."""
    start, stop = block_info[0]["array-location"][0]
    sel = None if mask is None else np.flatnonzero(mask[start:stop])
    pos, s = top_k(np.asarray(block), queries, k, rows=sel)
    out = np.full((1, len(queries), 2 * k), -np.inf)
    out[0, :, k:] = -1
    out[0, :, : pos.shape[1]] = s
    out[0, :, k : k + pos.shape[1]] = pos + start
    return out


def _dask_top_k(cells: Any, queries: np.ndarray, k: int, *, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k` over a dask array: each row block keeps its own top k (``map_blocks``), the client merges them."""
    import dask.array as da

    if cells.ndim != 2:
        raise ValueError(f"Expected a 2-D dask array (cells x dim), got shape {cells.shape}.")
    cells = cells.rechunk({1: -1})  # whole rows in every block
    n = cells.shape[0]
    k = min(int(k), n if rows is None else len(rows))
    mask = None
    if rows is not None:
        mask = np.zeros(n, dtype=bool)
        mask[rows] = True
    packed = da.map_blocks(
        _block_top_k,
        cells,
        queries=queries,
        k=k,
        mask=mask,
        dtype=np.float64,
        drop_axis=1,
        new_axis=[1, 2],
        chunks=((1,) * len(cells.chunks[0]), (len(queries),), (2 * k,)),
        meta=np.empty((0, 0, 0)),
    ).compute()
    scores = np.concatenate(list(packed[:, :, :k]), axis=1)
    positions = np.concatenate(list(packed[:, :, k:]), axis=1).astype(np.int64)
    scores, positions = _cut(scores, positions, k)
    keep = positions[0] >= 0 if len(positions) else np.zeros(0, bool)
    return _ordered(scores[:, keep].astype(np.float32), positions[:, keep])
