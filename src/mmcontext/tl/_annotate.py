"""Zero-shot annotation: each cell gets the label whose text it is closest to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import _keys
from .._logging import log_added
from .._provenance import record
from .._validation import check_adata, check_texts, check_writable, get_obs_column
from ._embed import joint_embedding, model_provenance

if TYPE_CHECKING:
    from anndata import AnnData

    from ..models import MMContextEncoder


def label_texts(labels: Sequence[str], *, templates: Sequence[str] | None = None, ontology: bool = True) -> list[list[str]]:
    """The texts that stand for each label: by default the caption a cell of that type gets.

    With ``templates`` (format strings with ``{label}``), one text per template.
    """
    if templates:
        return [[t.format(label=label) for t in templates] for label in labels]
    from ..pp._captions import caption_texts

    obs = pd.DataFrame({"cell_type": list(labels)})
    return [[t] for t in caption_texts(obs, {"cell_type": "cell_type"}, ontology=ontology)]


def label_embeddings(model: MMContextEncoder, texts: list[list[str]]) -> np.ndarray:
    """One unit vector per label: the normalised mean of its texts' embeddings."""
    flat = [t for group in texts for t in group]
    emb = model.encode_text(flat)
    out, start = [], 0
    for group in texts:
        mean = emb[start : start + len(group)].mean(axis=0)
        out.append(mean / max(np.linalg.norm(mean), 1e-12))
        start += len(group)
    return np.stack(out).astype(np.float32)


def annotate(
    adata: AnnData,
    model: MMContextEncoder,
    labels: str | Sequence[str],
    *,
    templates: Sequence[str] | None = None,
    ontology: bool = True,
    use_rep: str | None = None,
    key_added: str = _keys.LABEL,
    copy: bool = False,
) -> AnnData | None:
    """Assign each cell the candidate label whose text embedding is most similar (zero-shot).

    Parameters
    ----------
    adata
        Annotated data matrix, prepared (and optionally embedded with :func:`mmcontext.tl.embed`).
    model
        A trained :class:`~mmcontext.models.MMContextEncoder`.
    labels
        Candidate labels, or the name of an ``obs`` column whose categories are the candidates.
    templates
        Format strings with ``{label}`` (e.g. ``"a {label} from human blood"``); the label's score is
        against the mean of its templates' embeddings. Default: the caption text a cell of that
        type gets from :func:`mmcontext.pp.captions`.
    ontology
        Enrich label texts with the Cell Ontology (as captions are) when no templates are given.
    use_rep
        ``obsm`` key of the initial embedding to embed cells from (default: reuse ``obsm['X_mmc']``).
    key_added
        Name of the label column; the other results are named after it.
    copy
        Return a copy instead of writing into ``adata``.

    Returns
    -------
    ``None``, or a copy of ``adata`` when ``copy=True``, with

    ``adata.obs[key_added]``
        categorical best label per cell.
    ``adata.obs[key_added + '_score']``
        float32 cosine similarity to that label.
    ``adata.obs[key_added + '_margin']``
        float32 gap between the best and second-best label score.
    ``adata.obsm[key_added + '_scores']``
        DataFrame, cells x labels, all scores.
    ``adata.uns['mmcontext']['annotate']``
        The labels, their texts and the model's provenance.

    Examples
    --------
    >>> mmc.tl.annotate(adata, model, ["B cell", "T cell", "monocyte"])  # doctest: +SKIP
    """
    check_adata(adata)
    check_writable(adata, copy=copy)
    if isinstance(labels, str):
        col = get_obs_column(adata, labels)
        labels = [str(c) for c in (col.cat.categories if hasattr(col, "cat") else pd.unique(col.dropna()))]
    labels = check_texts(labels, what="labels")
    if len(set(labels)) != len(labels):
        raise ValueError("labels must be distinct.")
    texts = label_texts(labels, templates=templates, ontology=ontology)
    cells = joint_embedding(adata, model, use_rep)
    scores = cells @ label_embeddings(model, texts).T
    order = np.argsort(-scores, axis=1)
    best = order[:, 0]
    top = scores[np.arange(len(scores)), best]
    second = scores[np.arange(len(scores)), order[:, 1]] if len(labels) > 1 else np.full(len(scores), np.nan)
    adata = adata.copy() if copy else adata
    adata.obs[key_added] = pd.Categorical.from_codes(best, categories=labels)
    adata.obs[f"{key_added}_score"] = top.astype(np.float32)
    adata.obs[f"{key_added}_margin"] = (top - second).astype(np.float32)
    adata.obsm[f"{key_added}_scores"] = pd.DataFrame(scores, index=adata.obs_names, columns=labels)
    record(adata, "annotate", {**model_provenance(model), "labels": labels, "texts": [" | ".join(t) for t in texts],
                               "key_added": key_added})
    log_added((key_added, "obs"), (f"{key_added}_score", "obs"), (f"{key_added}_margin", "obs"),
              (f"{key_added}_scores", "obsm"))
    return adata if copy else None
