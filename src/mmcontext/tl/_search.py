"""Retrieval: the k cells that best match each text (``search``) or a set of cells (``search_cells``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from .. import _keys
from .._docs import doc_params
from .._logging import logger
from .._provenance import record
from .._validation import (
    MMContextKeyError,
    check_adata,
    check_key_added,
    check_model,
    check_texts,
)
from ..data._topk import DEFAULT_CHUNK_SIZE
from ._grounding import MARKER_WEIGHT, check_marker_weight, marker_evidence, marker_genes
from ._index import CellIndex, embedding_fingerprint, get_vectors
from ._nearest import _check_k, filter_mask, nearest, resolve_index

if TYPE_CHECKING:
    from anndata import AnnData

    from ..models import MMContextEncoder

#: With marker grounding, the ``MARKER_POOL * k`` best cells by cosine (from the index, or exact) are re-ranked by
#: cosine plus marker evidence; the evidence is read for those candidates only.
MARKER_POOL = 10


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
