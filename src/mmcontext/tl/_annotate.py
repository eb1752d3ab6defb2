"""Zero-shot annotation: each cell gets the label whose text it is closest to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import _keys
from .._docs import doc_params
from .._frames import write_frame
from .._logging import log_added
from .._provenance import record
from .._validation import (
    MMContextKeyError,
    check_adata,
    check_key_added,
    check_model,
    check_number,
    check_outputs,
    check_texts,
    check_writable,
    get_obs_column,
)
from ._calibration import label_probabilities
from ._embed import joint_embedding, model_provenance
from ._grounding import MARKER_WEIGHT, check_marker_weight, marker_evidence
from ._texts import DEFAULT_TEMPLATES, label_texts, resolve_labels, subtype_map, text_embeddings

if TYPE_CHECKING:
    from anndata import AnnData

    from ..models import CellTextReranker, MMContextEncoder


def _connectivities(adata: AnnData, neighbors_key: str | None):
    """The kNN connectivities: ``obsp['connectivities']``, or those named by a neighbors ``uns`` key or ``obsp`` key."""
    obsp_key = "connectivities"
    if neighbors_key is not None:
        params = adata.uns.get(neighbors_key)
        obsp_key = params.get("connectivities_key", neighbors_key) if isinstance(params, dict) else neighbors_key
    if obsp_key not in adata.obsp:
        raise MMContextKeyError(
            f"adata.obsp[{obsp_key!r}] not found; smoothing needs a cell kNN graph. Run "
            "`sc.pp.neighbors(adata)` (or `sc.pp.neighbors(adata, use_rep='X_mmc')`) first, pass `neighbors_key=`, "
            "or set `smooth=0`."
        )
    return adata.obsp[obsp_key], obsp_key


def smooth_scores(scores: np.ndarray, connectivities, strength: float) -> np.ndarray:
    """Average each cell's scores with its kNN neighbours' (one step of label propagation, as in GRIT).

    ``(1 - strength) * S + strength * D^-1 W S`` where ``W`` is the connectivity matrix and ``D`` its row sums;
    cells without neighbours keep their scores.
    """
    from scipy import sparse

    W = sparse.csr_matrix(connectivities, dtype=np.float64)
    deg = np.asarray(W.sum(axis=1)).ravel()
    neigh = np.asarray(W @ scores.astype(np.float64)) / np.maximum(deg, 1e-12)[:, None]
    neigh[deg == 0] = scores[deg == 0]
    return ((1.0 - strength) * scores + strength * neigh).astype(np.float32)


@doc_params("adata_query", "model", "use_rep_embed", "overwrite", "copy", "returns_copy")
def annotate(
    adata: AnnData,
    model: MMContextEncoder,
    labels: str | Sequence[str],
    *,
    templates: Sequence[str] | None = None,
    ontology: bool = True,
    subtypes: str | Sequence[str] | None = None,
    smooth: float = 0.0,
    neighbors_key: str | None = None,
    min_score: float | None = None,
    unknown_label: str = "unknown",
    use_rep: str | None = None,
    key_added: str = _keys.LABEL,
    calibrate: bool = True,
    markers: Mapping[str, Sequence[str] | str] | str | bool = False,
    marker_weight: float = MARKER_WEIGHT,
    rerank: CellTextReranker | None = None,
    top_k: int = 3,
    overwrite: bool = False,
    copy: bool = False,
) -> AnnData | None:
    """Assign each cell the most probable candidate label (zero-shot).

    Each label stands for the mean embedding of its texts (one per template); a cell's score for a label
    is the cosine similarity between the cell's joint embedding and that mean. With a model trained on
    validation cells, scores become calibrated probabilities (:attr:`~mmcontext.models.MMContextEncoder.calibration`):
    ``weight * softmax(scale * scores) + (1 - weight) * prior``, where the prior is how often a label's caption
    was trained on (labels never trained on get the mean of the others'). A model that learned the cells gets a
    weight near 1, so its labels follow the scores; one that learned nothing (weight near 0) predicts the most
    frequent training label instead of noise. Without smoothing, a cell's result depends on that cell only, not
    on the batch or on the other cells annotated with it.

    Parameters
    ----------
    adata
        {adata_query}
    model
        {model}
    labels
        Candidate labels; Cell Ontology ids (``"CL:0000236"``) are replaced by their CL name. Or the name of
        an ``obs`` column whose categories are the candidates.
    templates
        Format strings over ``{caption}``, ``{label}`` and ``{name}`` (see :func:`label_texts`), e.g.
        ``["{caption}", "a {name} from human blood"]``; a label's texts are averaged. Default
        :data:`DEFAULT_TEMPLATES`: the caption text a cell of that type gets from :func:`mmcontext.pp.captions`.
    ontology
        Use the Cell Ontology for the label texts and for ``subtypes``.
    subtypes
        Finer cell type names the model knows (or an ``obs`` column of them, e.g. the training labels). A broad
        label (``"T cell"``) then scores as the best of itself and the subtypes the Cell Ontology puts under it.
    smooth
        Strength in [0, 1] of smoothing the scores over the cell kNN graph (``obsp['connectivities']``):
        ``(1 - smooth) * scores + smooth * mean of neighbours' scores``. 0 (default) turns it off.
    neighbors_key
        ``uns`` key of :func:`scanpy.pp.neighbors` results (or an ``obsp`` key) for ``smooth``; default
        ``obsp['connectivities']``.
    min_score
        Cells whose best score is below this get ``unknown_label`` instead (default: never).
    unknown_label
        Category for cells below ``min_score``.
    markers
        Ground each label in its marker genes (see :func:`mmcontext.tl.query`): ``True`` the shipped table, a
        dict or CSV path to extend it, ``False`` (default) the text scores alone. ``marker_weight`` times the
        label's marker evidence is added to its score before calibration and smoothing. Off by default: for labels
        the model was trained on the text scores are already sharp, and on pbmc68k_reduced the evidence lowered
        held-out accuracy (0.871 -> 0.857); use it for candidate labels the model never saw.
    marker_weight
        Weight of the marker evidence, 0.05 (``mmcontext.tl._grounding.MARKER_WEIGHT``) by default.
    calibrate
        Pick labels by the model's calibrated probabilities (default; models without a calibration, e.g. trained
        with ``validation_split=0``, fall back to the highest score). ``False``: always the highest score.
    use_rep
        {use_rep_embed}
    key_added
        Name of the label column; the other results are named after it.
    rerank
        A :class:`~mmcontext.models.CellTextReranker` (:func:`mmcontext.tl.train_reranker`): each cell's
        ``top_k`` labels are reordered by this cross-encoder (scored against each label's first text); they
        keep the same set of scores, so the best label is the cross-encoder's pick among the top-k.
    top_k
        Labels per cell that ``rerank`` rescores.
    overwrite
        {overwrite}
    copy
        {copy}

    Returns
    -------
    {returns_copy}

    ``adata.obs[key_added]``
        categorical best label per cell (``unknown_label`` below ``min_score``).
    ``adata.obs[key_added + '_rerank_score']``
        with ``rerank``: float32 cross-encoder match probability of the best label.
    ``adata.obs[key_added + '_score']``
        float32 score of the chosen label.
    ``adata.obs[key_added + '_margin']``
        float32 gap between the chosen label's score and the best other label's (NaN with one label).
    ``adata.obs[key_added + '_probability']``
        with a calibrated model (and ``calibrate=True``): float32 calibrated probability of the chosen label.
    ``adata.obsm[key_added + '_scores']``
        DataFrame, cells x labels, all scores. Its column names are h5ad-safe (a '/' in a label becomes '_');
        the labels as given are kept in ``adata.uns['mmcontext']['columns'][key_added + '_scores']`` (when they
        differ) and :func:`label_scores` returns the frame with them.
    ``adata.obsm[key_added + '_markers']``
        with ``markers``: DataFrame, cells x labels, the marker evidence (mean standardised marker expression).
    ``adata.uns['mmcontext']['annotate']``
        The labels, their texts, CL ids, subtypes, parameters and the model's provenance; with ``markers``,
        ``markers`` holds per label the term matched, the term whose markers were used, the genes used and missing,
        and the genes' mean standardised values in the label's 50 best cells.

    Examples
    --------
    >>> mmc.tl.annotate(adata, model, ["B cell", "T cell", "monocyte"])  # doctest: +SKIP
    >>> mmc.tl.annotate(adata, model, "bulk_labels", smooth=0.3)  # doctest: +SKIP

    """
    check_adata(adata)
    check_writable(adata, copy=copy)
    check_model(model)
    check_key_added(key_added)
    outputs = [(key_added, "obs"), (f"{key_added}_score", "obs"), (f"{key_added}_margin", "obs")]
    outputs += [(f"{key_added}_scores", "obsm")]
    outputs += [(f"{key_added}_probability", "obs")] if calibrate and model.calibration else []
    outputs += [(f"{key_added}_rerank_score", "obs")] if rerank is not None else []
    check_outputs(adata, "annotate", outputs, overwrite=overwrite)
    labels, cl_ids = resolve_labels(adata, labels)
    smooth = check_number(smooth, what="smooth", low=0.0, high=1.0)
    min_score = check_number(min_score, what="min_score", none=True)
    top_k = check_number(top_k, what="top_k", integer=True, low=1)
    if not isinstance(unknown_label, str) or not unknown_label.strip():
        raise TypeError(f"unknown_label must be a non-empty string, got {unknown_label!r}.")
    if unknown_label in labels and min_score is not None:
        raise ValueError(f"unknown_label {unknown_label!r} is also a candidate label; pass another `unknown_label=`.")
    graph, graph_key = _connectivities(adata, neighbors_key) if smooth > 0 else (None, None)
    if graph is not None and graph.shape != (adata.n_obs, adata.n_obs):
        raise ValueError(f"adata.obsp[{graph_key!r}] has shape {graph.shape}, expected {(adata.n_obs, adata.n_obs)}.")
    sub_map: dict[str, list[str]] = {}
    if subtypes is not None:
        if isinstance(subtypes, str):
            col = get_obs_column(adata, subtypes)
            subtypes = [str(c) for c in (col.cat.categories if hasattr(col, "cat") else pd.unique(col.dropna()))]
        subtypes = check_texts(subtypes, what="subtypes")
        if not ontology:
            raise ValueError("subtypes= needs the Cell Ontology; set `ontology=True`.")
        sub_map = {k: [s for s in v if s != k] for k, v in subtype_map(labels, subtypes).items()}
    extra = list(dict.fromkeys(s for v in sub_map.values() for s in v if s not in labels))
    weight = check_marker_weight(marker_weight)
    texts = label_texts(labels + extra, templates=templates, ontology=ontology)
    cells = joint_embedding(adata, model, use_rep)
    all_scores = cells @ text_embeddings(model, texts).T
    evidence = marker_evidence(adata, model, labels + extra, markers=markers, use_rep=use_rep) if weight else None
    if evidence is not None:
        all_scores = all_scores + weight * evidence.scores
    scores = all_scores[:, : len(labels)].copy()
    index = {name: i for i, name in enumerate(labels + extra)}
    for j, label in enumerate(labels):
        if sub_map.get(label):
            cols = [j] + [index[s] for s in sub_map[label]]
            scores[:, j] = all_scores[:, cols].max(axis=1)
    if graph is not None:
        scores = smooth_scores(scores, graph, float(smooth))
    rerank_probs = None
    if rerank is not None:
        from ._rerank import rerank_scores

        scores, rerank_probs = rerank_scores(
            adata, rerank, [t[0] for t in texts[: len(labels)]], scores, top_k=top_k, axis=1, use_rep=use_rep
        )
    calibration = model.calibration if calibrate else {}
    prob = label_probabilities(scores, _prior_texts(labels, texts, sub_map, index), calibration)
    rows = np.arange(len(scores))
    best = np.argmax(scores if prob is None else prob, axis=1)
    top = scores[rows, best]
    if len(labels) > 1:
        second = np.where(np.arange(len(labels))[None, :] == best[:, None], -np.inf, scores).max(axis=1)
    else:
        second = np.full(len(scores), np.nan, dtype=np.float32)
    categories = list(labels)
    codes = best.copy()
    if min_score is not None:
        categories.append(unknown_label)
        codes[top < min_score] = len(labels)
    adata = adata.copy() if copy else adata
    adata.obs[key_added] = pd.Categorical.from_codes(codes, categories=categories)
    adata.obs[f"{key_added}_score"] = top.astype(np.float32)
    adata.obs[f"{key_added}_margin"] = (top - second).astype(np.float32)
    write_frame(adata, f"{key_added}_scores", scores.astype(np.float32), labels)  # h5-safe names, originals in uns
    if prob is not None:
        adata.obs[f"{key_added}_probability"] = prob[rows, best]
    if rerank_probs is not None:
        adata.obs[f"{key_added}_rerank_score"] = rerank_probs[rows, best].astype(np.float32)
    written = [(key_added, "obs"), (f"{key_added}_score", "obs"), (f"{key_added}_margin", "obs")]
    written += [(f"{key_added}_scores", "obsm")]
    written += [(f"{key_added}_probability", "obs")] if prob is not None else []
    written += [(f"{key_added}_rerank_score", "obs")] if rerank is not None else []
    written += [(f"{key_added}_markers", "obsm")] if evidence is not None else []
    explain = {}
    if evidence is not None:
        evidence.summarise(all_scores)
        write_frame(adata, f"{key_added}_markers", evidence.scores[:, : len(labels)].astype(np.float32), labels)
        # keyed by position: labels may hold "/" ("CD4+/CD25 T Reg"), which h5ad reads as nested groups
        explain = {str(j): evidence.explain[j] for j in range(len(labels))}
    record(
        adata,
        "annotate",
        {
            **model_provenance(model),
            "labels": labels,
            "texts": [" | ".join(t) for t in texts[: len(labels)]],
            "cl_ids": [cl_ids.get(label, "") for label in labels],
            "subtypes": [", ".join(sub_map.get(label, [])) for label in labels],
            "templates": list(templates) if templates is not None else list(DEFAULT_TEMPLATES),
            "ontology": ontology,
            "smooth": float(smooth),
            "neighbors_key": graph_key,
            "min_score": min_score,
            "unknown_label": unknown_label,
            "key_added": key_added,
            "rerank_top_k": top_k if rerank is not None else None,
            "calibration": ({k: calibration[k] for k in ("scale", "weight")} if prob is not None else None),
            "marker_weight": weight if evidence is not None else 0.0,
            "markers": explain,
        },
        key=key_added,
        outputs=("annotate", written),
    )
    log_added(*written)
    return adata if copy else None


def label_scores(adata: AnnData, *, key: str = _keys.LABEL) -> pd.DataFrame:
    """The cells x labels scores of :func:`annotate`, with the labels as given (also after an h5ad round trip).

    ``adata.obsm[key + '_scores']`` holds them under h5ad-safe column names ('/' replaced); this frame has the
    original label names, e.g. ``"CD4+/CD25 T Reg"``.

    Parameters
    ----------
    adata
        Annotated data matrix after :func:`annotate`.
    key
        The ``key_added`` of :func:`annotate`.

    Returns
    -------
    DataFrame, cells x labels, of the scores in ``adata.obsm[key + '_scores']`` with the label names as given.

    Examples
    --------
    >>> mmc.tl.label_scores(adata)["CD4+/CD25 T Reg"]  # doctest: +SKIP

    """
    from .._frames import read_frame

    scores_key = f"{key}_scores"
    if scores_key not in adata.obsm:
        raise MMContextKeyError(
            f"adata.obsm[{scores_key!r}] not found; run `mmc.tl.annotate(adata, model, labels)` first"
            f"{'' if key == _keys.LABEL else ' with this `key_added=`'}."
        )
    return read_frame(adata, scores_key)


def _prior_texts(
    labels: list[str], texts: list[list[str]], sub_map: dict[str, list[str]], index: dict[str, int]
) -> list[list[str]]:
    """Per label, the texts whose training frequency is its prior: its own, and its subtypes' with ``subtypes=``."""
    return [texts[j] + [t for s in sub_map.get(label, []) for t in texts[index[s]]] for j, label in enumerate(labels)]
