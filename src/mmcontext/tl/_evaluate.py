"""Evaluation of zero-shot labels and text queries against known labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import _keys
from .._validation import check_adata, get_obs_column

if TYPE_CHECKING:
    from anndata import AnnData


def evaluate(
    adata: AnnData,
    *,
    label_key: str,
    pred_key: str = _keys.LABEL,
    queries: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """Score zero-shot labels and query scores against the true labels in ``obs``.

    Parameters
    ----------
    adata
        Annotated data matrix after :func:`mmcontext.tl.annotate` and/or :func:`mmcontext.tl.query`.
    label_key
        ``obs`` column with the true labels.
    pred_key
        ``obs`` column with predicted labels (skipped if absent).
    queries
        ``{query text: [true labels it should find]}``; each query's scores must be in ``obs``
        (from :func:`mmcontext.tl.query`, default column names).

    Returns
    -------
    Tidy DataFrame with columns ``metric``, ``subject`` and ``value``: ``accuracy``, ``balanced_accuracy``,
    ``macro_f1`` for ``pred_key``; ``auroc`` per query and its mean (``subject="mean"``).
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

    check_adata(adata)
    truth = get_obs_column(adata, label_key).astype(str).to_numpy()
    rows = []
    if pred_key in adata.obs:
        pred = adata.obs[pred_key].astype(str).to_numpy()
        rows += [
            ("accuracy", pred_key, accuracy_score(truth, pred)),
            ("balanced_accuracy", pred_key, balanced_accuracy_score(truth, pred)),
            ("macro_f1", pred_key, f1_score(truth, pred, average="macro", labels=np.unique(truth), zero_division=0)),
        ]
    aurocs = []
    for text, positives in (queries or {}).items():
        key = _keys.query_key(text)
        scores = get_obs_column(adata, key).to_numpy()
        y = np.isin(truth, list(positives))
        if y.all() or not y.any():
            raise ValueError(f"Query {text!r}: its labels {list(positives)!r} cover all or none of the cells.")
        auc = roc_auc_score(y, scores)
        aurocs.append(auc)
        rows.append(("auroc", text, auc))
    if aurocs:
        rows.append(("auroc", "mean", float(np.mean(aurocs))))
    return pd.DataFrame(rows, columns=["metric", "subject", "value"])
