"""Retrieval: the k cells that best match each text (``search``) or a set of cells (``search_cells``)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from .. import _keys
from .._docs import doc_params
from .._errors import StaleIndexError
from .._logging import logger
from .._provenance import record
from .._validation import (
    MMContextKeyError,
    _closest,
    check_adata,
    check_key_added,
    check_model,
    check_texts,
)
from ..data._topk import DEFAULT_CHUNK_SIZE, top_k
from ._grounding import MARKER_WEIGHT, check_marker_weight, marker_evidence, marker_genes
from ._index import CellIndex, embedding_fingerprint, get_vectors, load_index

if TYPE_CHECKING:
    from anndata import AnnData

    from ..models import MMContextEncoder

#: With an approximate index and ``obs_filter``, filters selecting at most this many cells (or under
#: :data:`EXACT_FRACTION` of them) are searched exactly over the selected cells instead of post-filtering.
EXACT_SUBSET = 200_000
EXACT_FRACTION = 0.05
#: With marker grounding, the ``MARKER_POOL * k`` best cells by cosine (from the index, or exact) are re-ranked by
#: cosine plus marker evidence; the evidence is read for those candidates only.
MARKER_POOL = 10


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


def hits_table(adata: AnnData, names: list[str], pos: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """The tidy result: one row per (query, rank) with the cell's obs name and its score."""
    valid = pos >= 0
    q = np.repeat(np.arange(len(names)), valid.sum(axis=1))
    rank = (np.cumsum(valid, axis=1)[valid]).astype(np.int32)
    return pd.DataFrame(
        {
            "query": pd.Categorical.from_codes(q, categories=pd.Index(names, dtype=object)),
            "rank": rank,
            "obs_name": np.asarray(adata.obs_names)[pos[valid]],
            "score": scores[valid].astype(np.float32),
        }
    )


def _describe_filter(obs_filter: Any, mask: np.ndarray | None) -> Any:
    if mask is None:
        return None
    if isinstance(obs_filter, dict):
        return {
            str(c): list(map(str, v)) if isinstance(v, (list, tuple, set, np.ndarray)) else str(v)
            for c, v in obs_filter.items()
        }
    return f"boolean mask ({int(mask.sum())} cells)"


def _common_params(
    adata: AnnData, k: int, method: str, index: CellIndex | None, use_rep: str, obs_filter: Any, mask: Any
) -> dict[str, Any]:
    """What both searches record: ``k``, ``method``, ``index``, ``use_rep``, ``obs_filter``, ``n_searched``."""
    return {
        "k": k,
        "method": method,
        "index": str(index.path) if index is not None and index.path else None,
        "use_rep": use_rep,
        "obs_filter": _describe_filter(obs_filter, mask),
        "n_searched": int(mask.sum()) if mask is not None else adata.n_obs,
    }


def _record(adata: AnnData, key_added: str, params: dict[str, Any], n_rows: int) -> None:
    if adata.is_view:
        logger.info("adata is a view: the search parameters are not recorded")
        return
    record(adata, key_added, params)
    logger.info("added %r (adata.uns['mmcontext']); returned %d hits", key_added, n_rows)


def _ground(
    adata: AnnData,
    model: MMContextEncoder,
    queries: list[str],
    pos: np.ndarray,
    scores: np.ndarray,
    *,
    k: int,
    markers: Any,
    weight: float,
) -> tuple[np.ndarray, np.ndarray, dict[str, dict]]:
    """Re-rank each query's candidates (``pos``, cosine ``scores``) by cosine + weight * marker evidence; keep ``k``."""
    valid = pos >= 0
    cand = np.unique(pos[valid])
    evidence = marker_evidence(adata[cand], model, queries, markers=markers)
    at = np.searchsorted(cand, np.clip(pos, 0, None))  # each candidate's row in the evidence
    ev = np.where(valid, evidence.scores[at, np.arange(len(queries))[:, None]], np.float32(0))
    combined = np.where(valid, scores + weight * ev, -np.inf).astype(np.float32)
    order = np.argsort(-combined, axis=1, kind="stable")[:, :k]
    new_pos = np.where(np.take_along_axis(valid, order, axis=1), np.take_along_axis(pos, order, axis=1), -1)
    new_scores = np.take_along_axis(combined, order, axis=1)
    grounding = {}
    for j, query in enumerate(queries):
        Z = evidence.per_gene[j]
        if Z.shape[1] == 0:
            continue
        top = at[j][order[j]][new_pos[j] >= 0]
        info = {key: value for key, value in evidence.explain[j].items() if key != "text"}
        info.update(
            query=query,
            weight=float(weight),
            gene_z_top=[float(v) for v in Z[top].mean(axis=0)],
            gene_z_pool=[float(v) for v in Z[at[j][valid[j]]].mean(axis=0)],
        )
        grounding[_keys.query_key(query)] = info  # h5ad-safe names, as tl.query's obs columns
    return new_pos, new_scores, grounding


@doc_params("key_added_record")
def search(
    adata: AnnData,
    model: MMContextEncoder,
    queries: str | Sequence[str],
    *,
    k: int = 100,
    index: CellIndex | str | os.PathLike | None = None,
    use_rep: str = _keys.X_MMC,
    obs_filter: dict[str, Any] | np.ndarray | pd.Series | None = None,
    expand: Literal["ontology"] | None = "ontology",
    markers: Mapping[str, Sequence[str] | str] | str | bool = True,
    marker_weight: float = MARKER_WEIGHT,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    key_added: str = _keys.SEARCH,
) -> pd.DataFrame:
    """The ``k`` cells that best match each text query, without scoring what need not be scored.

    Texts are embedded as :func:`mmcontext.tl.query` embeds them (``expand``); cells are not scored one by one into
    ``obs``. Without ``index`` (or with an ``"exact"`` one) every selected cell is scored in chunks of
    ``chunk_size`` cells (float32 matrix products, ``np.argpartition`` per chunk; memory: queries x chunk), so the
    result is exact. With an approximate index (:func:`mmcontext.tl.build_index`, ``"faiss"``, ``"usearch"``,
    ``"hnswlib"``) the index answers; ``obs_filter`` then post-filters a widened candidate list, and a filter that
    keeps few cells (at most :data:`EXACT_SUBSET`, or under 5%) is searched exactly over those cells.
    A dask array in ``obsm[use_rep]`` is scored block by block (``map_blocks``; a ``dask.distributed`` client
    spreads the blocks).

    A query that names a cell type is grounded in its marker genes as in :func:`mmcontext.tl.query` (``markers=True``,
    default): a hit's score is ``cosine + marker_weight * evidence``, the same number ``tl.query`` writes for that
    cell. So that the index keeps its point, the evidence is not read for every cell: the
    :data:`MARKER_POOL` ``* k`` best cells by cosine (exact, or from the index) are re-ranked by the grounded score and
    the best ``k`` returned; a cell outside that pool is not found by its markers alone. With the expression read by
    gene name (a model without a gene space), it is standardised over the pool. Queries without usable marker genes,
    ``markers=False`` and ``marker_weight=0`` search by cosine alone, exactly as without grounding.

    Parameters
    ----------
    adata
        Annotated data matrix with the joint embedding in ``obsm[use_rep]`` (:func:`mmcontext.tl.embed`).
    model
        The :class:`~mmcontext.models.MMContextEncoder` that embedded the cells (its text tower embeds the queries).
    queries
        One text or a list of distinct texts.
    k
        Cells returned per query (fewer when fewer cells pass ``obs_filter``).
    index
        A :class:`~mmcontext.tl._index.CellIndex`, or the folder of a saved one; it is checked against ``adata``'s
        cells, ``use_rep`` and ``model`` (a stale index raises, naming what differs). ``None``: exact search.
    use_rep
        ``obsm`` key of the joint embedding.
    obs_filter
        Only cells passing it: ``{obs column: value or list of values}`` (every entry must hold), or a boolean mask
        over the cells.
    expand
        As in :func:`mmcontext.tl.query`: ``"ontology"`` phrases queries naming a Cell Ontology term as captions.
    markers, marker_weight
        Marker-gene evidence added to the cosine score, as in :func:`mmcontext.tl.query`: ``True`` (default) the
        shipped table, a dict ``{cell type or CL id: [genes]}`` or a CSV path extends it, ``False`` (or weight 0)
        plain cosine search. Genes are read from the initial embedding (``pp.prepare``) beside ``use_rep``, else from
        the expression by gene name.
    chunk_size
        Cells scored per matrix product in exact search.
    key_added
        {key_added_record}

    Returns
    -------
    A DataFrame with one row per hit, best first within each query: ``query`` (categorical, in the order given),
    ``rank`` (1 = best), ``obs_name`` and ``score`` (float32 cosine similarity; with marker evidence, plus
    ``marker_weight`` times it). Also ``adata.uns['mmcontext'][key_added]``: ``queries``, ``k``, ``method``
    (``"exact"`` or the index's), ``index`` (its folder), ``use_rep``, ``obs_filter``, ``n_searched`` (cells passing
    the filter), the model's provenance, ``markers`` (whether evidence was used), ``marker_weight``, ``marker_pool``
    (candidates re-ranked per query) and ``grounding``: per query with marker genes, the CL term matched, the term
    whose markers were used, ``genes`` and ``missing_genes``, ``read_from``, and each gene's mean standardised value
    in the hits (``gene_z_top``) and in the pool (``gene_z_pool``), keyed as :func:`mmcontext.tl.query` names its
    columns (``"mmc_natural_killer_cells"``).

    Examples
    --------
    >>> hits = mmc.tl.search(adata, model, ["natural killer cells", "monocytes"], k=50)  # doctest: +SKIP
    >>> hits.groupby("query").head(3)  # doctest: +SKIP
    >>> mmc.tl.search(adata, model, "B cells", obs_filter={"donor_id": "d1"}, index="atlas.index")  # doctest: +SKIP

    """
    from ._embed import model_provenance
    from ._texts import query_texts, text_embeddings

    check_adata(adata)
    check_model(model)
    queries = check_texts(queries, what="queries")
    if len(set(queries)) != len(queries):
        raise ValueError(f"queries must be distinct; {sorted({q for q in queries if queries.count(q) > 1})!r} repeat.")
    k = _check_k(k)
    check_key_added(key_added)
    check_key_added(use_rep, what="use_rep")
    mask = filter_mask(adata, obs_filter)
    index = resolve_index(index)
    weight = check_marker_weight(marker_weight)
    grounded = bool(weight) and any(marker_genes(adata, model, queries, markers=markers))
    n_searched = int(mask.sum()) if mask is not None else adata.n_obs
    pool = max(k, min(MARKER_POOL * k, n_searched)) if grounded else k
    prov = model_provenance(model)
    vectors = text_embeddings(model, query_texts(queries, expand=expand))
    pos, scores, method = nearest(
        adata,
        vectors,
        k=pool,
        index=index,
        use_rep=use_rep,
        mask=mask,
        fingerprint=prov["model_fingerprint"],
        chunk_size=chunk_size,
    )
    grounding: dict[str, dict] = {}
    if grounded:
        pos, scores, grounding = _ground(adata, model, queries, pos, scores, k=k, markers=markers, weight=weight)
    hits = hits_table(adata, queries, pos, scores)
    params = {
        **prov,
        "queries": queries,
        **_common_params(adata, k, method, index, use_rep, obs_filter, mask),
        "expand": expand,
        "markers": grounded,
        "marker_weight": weight if grounded else 0.0,
        "marker_pool": pool if grounded else None,
    }
    if grounding:
        params["grounding"] = grounding
    _record(adata, key_added, params, len(hits))
    return hits


def query_cells(adata: AnnData, cells: Any) -> np.ndarray:
    """Positions of ``cells`` (an obs name, a list of obs names, or a boolean mask over the cells)."""
    if isinstance(cells, str):
        cells = [cells]
    arr = np.asarray(cells)
    if arr.dtype == bool:
        if arr.shape != (adata.n_obs,):
            raise ValueError(f"cells as a boolean mask must have shape ({adata.n_obs},), got {arr.shape}.")
        pos = np.flatnonzero(arr)
    else:
        names = [str(c) for c in arr.reshape(-1)]
        pos = adata.obs_names.get_indexer(names)
        if (pos < 0).any():
            missing = [n for n, p in zip(names, pos, strict=True) if p < 0]
            raise MMContextKeyError(f"cells {missing[:5]!r} are not in adata.obs_names ({len(missing)} missing).")
    if not len(pos):
        raise ValueError("cells selects no cells; pass obs names or a boolean mask with at least one True.")
    return pos


@doc_params("key_added_record")
def search_cells(
    adata: AnnData,
    cells: str | Sequence[str] | np.ndarray,
    *,
    k: int = 100,
    index: CellIndex | str | os.PathLike | None = None,
    use_rep: str = _keys.X_MMC,
    obs_filter: dict[str, Any] | np.ndarray | pd.Series | None = None,
    combine: Literal["mean"] | None = "mean",
    exclude_query: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    key_added: str = _keys.SEARCH_CELLS,
) -> pd.DataFrame:
    """Cells like these: the ``k`` cells whose joint embedding is closest to given cells'.

    Parameters
    ----------
    adata
        Annotated data matrix with the joint embedding in ``obsm[use_rep]``.
    cells
        The query cells: an obs name, a list of obs names, or a boolean mask over the cells.
    k, index, use_rep, obs_filter, chunk_size
        As in :func:`mmcontext.tl.search`; an index is checked against the model fingerprint
        :func:`mmcontext.tl.embed` recorded for ``obsm[use_rep]``.
    combine
        ``"mean"`` (default): one query, the normalised mean embedding of the cells (named after the cell, or
        ``"mean of <n> cells"``). ``None``: one query per cell, named by its obs name.
    exclude_query
        Leave the query cells out of the results.
    key_added
        {key_added_record}

    Returns
    -------
    The DataFrame of :func:`mmcontext.tl.search` (``query``, ``rank``, ``obs_name``, ``score``), and
    ``adata.uns['mmcontext'][key_added]``: ``cells`` (the query cells' obs names, at most 1,000), ``n_query_cells``,
    ``combine``, ``k``, ``method``, ``index``, ``use_rep``, ``obs_filter``, ``n_searched``.

    Examples
    --------
    >>> mmc.tl.search_cells(adata, adata.obs["leiden"] == "7", k=200)  # doctest: +SKIP

    """
    check_adata(adata)
    k = _check_k(k)
    check_key_added(key_added)
    check_key_added(use_rep, what="use_rep")
    if combine not in ("mean", None):
        raise ValueError(f"combine={combine!r} is not one of 'mean', None.")
    pos = query_cells(adata, cells)
    mask = filter_mask(adata, obs_filter)
    index = resolve_index(index)
    vectors = np.asarray(get_vectors(adata, use_rep)[pos], dtype=np.float32)
    names = list(adata.obs_names[pos])
    if combine == "mean":
        mean = vectors.mean(axis=0)
        vectors = (mean / max(float(np.linalg.norm(mean)), 1e-12))[None, :]
        names = [names[0] if len(pos) == 1 else f"mean of {len(pos)} cells"]
    exclude = pos if exclude_query else None
    hit_pos, scores, method = nearest(
        adata,
        vectors,
        k=k,
        index=index,
        use_rep=use_rep,
        mask=mask,
        fingerprint=None,
        exclude=exclude,
        chunk_size=chunk_size,
    )
    hits = hits_table(adata, names, hit_pos, scores)
    params = {
        "cells": list(map(str, adata.obs_names[pos[:1000]])),
        "n_query_cells": len(pos),
        "combine": combine,
        "exclude_query": exclude_query,
        **_common_params(adata, k, method, index, use_rep, obs_filter, mask),
        "model_fingerprint": embedding_fingerprint(adata, use_rep),
    }
    _record(adata, key_added, params, len(hits))
    return hits
