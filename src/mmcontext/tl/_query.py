"""Free-text questions to a dataset: one score per cell and query.

:func:`query` compares a query with the cell embedding directly, :func:`label_query` through a label vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from .. import _keys
from .._docs import doc_params
from .._logging import log_added
from .._provenance import find_record, mark_outputs, record
from .._validation import check_adata, check_model, check_number, check_outputs, check_texts, check_writable
from ._calibration import softmax_rows
from ._embed import joint_embedding, model_provenance
from ._grounding import MARKER_WEIGHT, check_marker_weight, marker_evidence, write_evidence
from ._texts import label_texts, query_texts, resolve_labels, text_embeddings

if TYPE_CHECKING:
    from anndata import AnnData

    from ..models import CellTextReranker, MMContextEncoder


@doc_params("adata_query", "model", "overwrite", "copy", "returns_copy")
def query(
    adata: AnnData,
    model: MMContextEncoder,
    queries: str | Sequence[str],
    *,
    use_rep: str | None = None,
    key_added: str | Sequence[str] | None = None,
    expand: Literal["ontology"] | None = "ontology",
    contrast: float = 0.0,
    markers: Mapping[str, Sequence[str] | str] | str | bool = True,
    marker_weight: float = MARKER_WEIGHT,
    rerank: CellTextReranker | None = None,
    top_k: int = 100,
    overwrite: bool = False,
    copy: bool = False,
) -> AnnData | None:
    """Score every cell against free-text queries.

    With ``expand="ontology"`` (the default) a query naming a Cell Ontology term is rephrased before it is embedded,
    so its scores differ from encoding the text yourself (``model.encode(query)``, by up to ~0.16 on
    pbmc68k_reduced); the text actually embedded is recorded in ``adata.uns['mmcontext']['query']['per_query']``
    and ``expand=None`` embeds every query as typed.

    The score is the cosine similarity between the query's text embedding and the cell's joint
    embedding (in [-1, 1]; higher = the cell matches the text better; minus the ``contrast`` term).
    A query that names a Cell Ontology term (a name, synonym or CL id) is embedded in the form
    :func:`mmcontext.pp.captions` writes captions ("monocytes" -> "A monocytes, a monocyte, a kind of
    mononuclear phagocyte and leukocyte, of the myeloid lineage."), so it reaches cells through the
    ontology's ancestors and lineage even when the cell type never appeared in a training caption.

    A query that names a cell type is also grounded in genes (``markers=True``, default): its canonical marker
    genes (:class:`mmcontext.ontology.MarkerTable`; inherited from the nearest ancestor term with markers, plus
    the CD antigens the name spells out) are read from the cell's input expression and standardised with the
    model's training statistics, and ``marker_weight`` times their mean is added to the score. The genes used,
    the term they came from and the per-gene values in the best cells are written to ``uns`` and shown by
    :func:`mmcontext.pl.markers`.

    Parameters
    ----------
    adata
        {adata_query}
    model
        {model}
    queries
        One text or a list of texts, e.g. ``["natural killer cells", "monocytes"]``.
    use_rep
        ``obsm`` key of the initial embedding to embed cells from. Default: reuse ``obsm['X_mmc']``
        when this model wrote it, else embed from the prepared initial embedding.
    expand
        ``"ontology"`` (default): queries that match a CL term with confidence >= :data:`EXPAND_MIN_SCORE`
        are phrased as captions; other queries are used as typed. ``None``: every query as typed.
    contrast
        For cell types the model never trained on: subtract ``contrast`` times each cell's best similarity to the
        training captions (kept with the model's :attr:`~mmcontext.models.MMContextEncoder.calibration`), so cells
        a known caption already explains rank below cells no caption explains. In [0, 1]; 0 (default) is the plain
        cosine. On pbmc68k_reduced with one type left out of training, 0.5 raised its AUROC by name from 0.73 to
        0.83 for B cells (mean over the 10 types 0.815 -> 0.852) but lowered the 12 benchmark queries of trained
        types from 0.974 to 0.967: use it to look for what the model has not seen.
    markers
        ``True`` (default): marker evidence from the shipped table; a dict ``{cell type or CL id: [genes]}`` or a
        CSV path: the table extended by it; ``False``: the text score alone.
    marker_weight
        Weight of the marker evidence (in training standard deviations) added to the cosine score, default
        0.05 (``mmcontext.tl._grounding.MARKER_WEIGHT``). On pbmc68k_reduced with one type left out of training, it
        raised the mean AUROC of the left-out type by its name (``contrast=0.5``) from 0.852 to 0.926 (natural
        killer cells 0.53 -> 0.94; every type >= 0.84), with held-out accuracy unchanged and the 12
        benchmark queries of trained types at a mean AUROC of 0.975 (0.974 without).
        0 switches the evidence off as ``markers=False`` does.
    key_added
        ``obs`` column name per query. Default: ``"mmc_"`` + the query lower-cased with non-alphanumeric
        runs replaced by ``_`` (``"natural killer cells"`` -> ``"mmc_natural_killer_cells"``).
    rerank
        A :class:`~mmcontext.models.CellTextReranker` (:func:`mmcontext.tl.train_reranker`): the ``top_k``
        cells of each query are reordered by this cross-encoder; they keep the same set of scores.
    top_k
        Cells per query that ``rerank`` rescores.
    overwrite
        {overwrite}
    copy
        {copy}

    Returns
    -------
    {returns_copy}

    ``adata.obs[<key>]``
        float32 score per cell, one column per query.
    ``adata.obs[<key> + '_markers']``
        with ``markers``, for each query whose marker genes the data holds: float32 marker evidence per cell
        (mean standardised marker expression; the score holds ``marker_weight`` times it).
    ``adata.uns['mmcontext']['markers'][<key>]``
        with ``markers``: the query, the CL term it matched, the term whose markers were used (``markers_from``,
        ``inherited``), ``genes`` used and ``missing_genes``, where they were read (``read_from``), ``weight``, and
        each gene's mean standardised value in the 50 best cells (``gene_z_top``) and in all cells (``gene_z_all``).
    ``adata.obs[<key> + '_rerank']``
        with ``rerank``: float32 cross-encoder match probability of the top-k cells, NaN for the others.
    ``adata.uns['mmcontext']['query']``
        ``queries`` and ``keys`` (parallel lists), ``expand``, ``contrast``, the model's provenance, and
        ``per_query``: for each ``obs`` key the ``query``, the ``text`` actually embedded for it (its caption
        phrasing with ``expand="ontology"``; several texts joined by ``" | "``), what the ``score`` is, its
        ``best_similarity`` to any cell, the ``caption_floor`` (the least similarity of a training caption to its
        nearest other caption; NaN without training captions) and ``far`` (best below the floor: the query is
        further from what the model learned than its captions are from one another, and it cannot answer it;
        also logged as a warning).

    Examples
    --------
    >>> mmc.tl.query(adata, model, ["natural killer cells", "monocytes"])  # doctest: +SKIP
    >>> adata.obs["mmc_natural_killer_cells"].sort_values().tail()  # doctest: +SKIP

    """
    check_adata(adata)
    check_writable(adata, copy=copy)
    check_model(model)
    queries = check_texts(queries, what="queries")
    keys = query_keys(queries, key_added)
    outputs = [(k, "obs") for k in keys] + ([(f"{k}_rerank", "obs") for k in keys] if rerank is not None else [])
    check_outputs(adata, "query", outputs, overwrite=overwrite)
    contrast = check_number(contrast, what="contrast", low=0.0, high=1.0)
    top_k = check_number(top_k, what="top_k", integer=True, low=1)
    known = list(model.calibration.get("prior", {})) if contrast else []
    if contrast and not known:
        raise ValueError(
            "contrast= needs the model's training captions, kept with its calibration; this model has "
            "none (trained with validation_split=0, or saved before mmcontext stored them)."
        )
    weight = check_marker_weight(marker_weight)
    phrasings = query_texts(queries, expand=expand)
    cells = joint_embedding(adata, model, use_rep)
    # queries x cells, C-ordered: each query's scores are contiguous and become its obs column without a copy
    scores = (text_embeddings(model, phrasings) @ cells.T).T
    from ._reach import caption_floor, query_records

    score = "cosine similarity" if not contrast else f"cosine similarity - {float(contrast):g} x best caption's"
    per_query = query_records(queries, keys, phrasings, scores.max(axis=0), caption_floor(model), score)
    if contrast:
        known_emb = text_embeddings(model, [[c] for c in known])
        scores -= float(contrast) * best_similarity(cells, known_emb)[:, None]
    evidence = (
        marker_evidence(adata, model, queries, markers=markers, use_rep=use_rep, combine=(scores, weight))
        if weight
        else None
    )
    if evidence is not None and any(e["genes"] for e in evidence.explain):  # (no genes for any query: nothing to add)
        scores = scores + weight * evidence.scores
    probs = None
    if rerank is not None:
        from ._rerank import rerank_scores

        scores, probs = rerank_scores(adata, rerank, queries, scores, top_k=top_k, axis=0, use_rep=use_rep)
        for rec in per_query.values():
            rec["score"] += f", top {top_k} reranked"
    adata = adata.copy() if copy else adata
    write_query_scores(
        adata,
        model,
        queries,
        keys,
        scores,
        {
            "expand": expand,
            "contrast": float(contrast),
            "markers": evidence is not None,
            "marker_weight": weight if evidence is not None else 0.0,
            "rerank_top_k": top_k if rerank is not None else None,
        },
        per_query,
    )
    if evidence is not None:
        log_added(*write_evidence(adata, keys, evidence, weight))
    if probs is not None:
        from ._obs import write_obs_columns

        write_obs_columns(adata, [f"{k}_rerank" for k in keys], probs.astype(np.float32))
        mark_outputs(adata, "query", [(f"{k}_rerank", "obs") for k in keys])
        log_added(*[(f"{k}_rerank", "obs") for k in keys])
    return adata if copy else None


def best_similarity(cells: np.ndarray, texts: np.ndarray, *, chunk_size: int = 8192) -> np.ndarray:
    """Each cell's largest cosine similarity to ``texts`` (unit rows), in row chunks (cells x texts is never whole)."""
    out = np.empty(len(cells), dtype=np.float32)
    for start in range(0, len(cells), chunk_size):
        out[start : start + chunk_size] = (cells[start : start + chunk_size] @ texts.T).max(axis=1)
    return out


def query_keys(queries: list[str], key_added: str | Sequence[str] | None) -> list[str]:
    """The ``obs`` column of each query: ``key_added`` or the default ``"mmc_<slug>"``; distinct."""
    if key_added is None:
        keys = [_keys.query_key(q) for q in queries]
    else:
        keys = [key_added] if isinstance(key_added, str) else list(key_added)
        if len(keys) != len(queries):
            raise ValueError(f"key_added has {len(keys)} names for {len(queries)} queries.")
    if len(set(keys)) != len(keys):
        raise ValueError(f"Queries map to duplicate obs columns {keys!r}; pass distinct `key_added` names.")
    return keys


def write_query_scores(
    adata: AnnData,
    model: MMContextEncoder,
    queries: list[str],
    keys: list[str],
    scores: np.ndarray,
    params: dict,
    per_query: dict[str, dict] | None = None,
) -> None:
    """Write one float32 ``obs`` column per query; merge them and ``per_query`` into ``uns['mmcontext']['query']``.

    ``scores`` is cells x queries; all columns join ``obs`` at once (one block; no copy when ``scores`` is the
    transpose of a C-ordered float32 queries x cells array), replacing earlier columns of the same names.
    """
    from ._obs import write_obs_columns

    write_obs_columns(adata, keys, np.asarray(scores, dtype=np.float32))
    previous = find_record(adata, "query")
    known = dict(zip(list(previous.get("keys", [])), list(previous.get("queries", [])), strict=False))
    known.update(zip(keys, queries, strict=True))
    merged = {k: v for k, v in dict(previous.get("per_query", {})).items() if k in known}
    merged.update(per_query or {})
    record(
        adata,
        "query",
        {
            **model_provenance(model),
            "keys": list(known),
            "queries": list(known.values()),
            **params,
            "per_query": merged,
        },
        outputs=("query", [(k, "obs") for k in keys]),
    )
    log_added(*[(k, "obs") for k in keys])


@doc_params("adata_query", "model", "use_rep_embed", "overwrite", "copy", "returns_copy")
def label_query(
    adata: AnnData,
    model: MMContextEncoder,
    queries: str | Sequence[str],
    *,
    labels: str | Sequence[str],
    temperature: float = 0.1,
    templates: Sequence[str] | None = None,
    ontology: bool = True,
    expand: Literal["ontology"] | None = "ontology",
    use_rep: str | None = None,
    key_added: str | Sequence[str] | None = None,
    markers: Mapping[str, Sequence[str] | str] | str | bool = False,
    marker_weight: float = MARKER_WEIGHT,
    overwrite: bool = False,
    copy: bool = False,
) -> AnnData | None:
    """Score cells against free-text queries through a vocabulary of cell type labels.

    :func:`mmcontext.tl.query` compares a query with the cell embedding directly. Here each cell is first
    described by how likely each candidate label is (a softmax over its :func:`annotate` scores at
    ``temperature``), and the query by how similar its text is to each label's text; the score is
    ``sum over labels of p(label | cell) * cos(query, label)``. Broad and paraphrased queries ("myeloid cells",
    "memory T helper cells") then rank cells by the cell types they resemble rather than by small
    off-type directions of the cell embedding. A cell's score depends on that cell only.

    Parameters
    ----------
    adata
        {adata_query}
    model
        {model}
    queries
        One text or a list of texts.
    labels
        The label vocabulary (as for :func:`annotate`: names, CL ids, or an ``obs`` column whose categories
        are used), e.g. the cell types the model was trained on.
    temperature
        Softmax temperature of ``p(label | cell)``; smaller trusts the best label more.
    templates, ontology
        Label texts, as in :func:`annotate`.
    expand
        How queries are phrased, as in :func:`mmcontext.tl.query`.
    use_rep
        {use_rep_embed}
    key_added
        ``obs`` column per query; default the names :func:`mmcontext.tl.query` uses (``"mmc_"`` + slug), so
        :func:`mmcontext.pl.query` and :func:`mmcontext.tl.evaluate` read them.
    markers, marker_weight
        Marker-gene evidence of each query added to its score, as in :func:`mmcontext.tl.query`; off by default
        (on pbmc68k_reduced it changed the 12 benchmark queries' mean AUROC from 0.982 to 0.980).
    overwrite
        {overwrite}
    copy
        {copy}

    Returns
    -------
    {returns_copy}

    ``adata.obs[<key>]``
        float32 score per cell, one column per query.
    ``adata.uns['mmcontext']['query']``
        ``queries`` and ``keys`` (parallel lists, merged with earlier queries), ``method="labels"``, the labels
        and temperature, and the model's provenance.
    ``adata.obs[<key> + '_markers']``, ``adata.uns['mmcontext']['markers'][<key>]``
        with ``markers``: the marker evidence and its explanation, as in :func:`mmcontext.tl.query`.

    Examples
    --------
    >>> mmc.tl.label_query(adata, model, ["myeloid cells"], labels="bulk_labels")  # doctest: +SKIP

    """
    check_adata(adata)
    check_writable(adata, copy=copy)
    check_model(model)
    queries = check_texts(queries, what="queries")
    keys = query_keys(queries, key_added)
    check_outputs(adata, "query", [(k, "obs") for k in keys], overwrite=overwrite)
    temperature = check_number(temperature, what="temperature", low=0.0, low_open=True)
    labels, _ = resolve_labels(adata, labels)
    texts = label_texts(labels, templates=templates, ontology=ontology)
    label_emb = text_embeddings(model, texts)
    cells = joint_embedding(adata, model, use_rep)
    prob = softmax_rows((cells @ label_emb.T) / float(temperature))
    phrasings = query_texts(queries, expand=expand)
    scores = prob @ (text_embeddings(model, phrasings) @ label_emb.T).T
    from ._reach import query_records

    per_query = query_records(queries, keys, phrasings, scores.max(axis=0), None, "label-weighted similarity")
    weight = check_marker_weight(marker_weight)
    evidence = marker_evidence(adata, model, queries, markers=markers, use_rep=use_rep) if weight else None
    if evidence is not None:
        if any(e["genes"] for e in evidence.explain):  # (no genes found for any query: nothing to add)
            scores = scores + weight * evidence.scores
        evidence.summarise(scores)
    adata = adata.copy() if copy else adata
    write_query_scores(
        adata,
        model,
        queries,
        keys,
        scores,
        {
            "method": "labels",
            "labels": labels,
            "temperature": float(temperature),
            "expand": expand,
            "markers": evidence is not None,
            "marker_weight": weight if evidence is not None else 0.0,
        },
        per_query,
    )
    if evidence is not None:
        log_added(*write_evidence(adata, keys, evidence, weight))
    return adata if copy else None
