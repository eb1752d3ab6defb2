"""Every metric: zero-shot labels, text queries, cross-modal retrieval, the joint embedding, supervised heads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import _keys
from .._frames import read_frame
from .._keys import TASKS
from .._provenance import find_record
from .._validation import MMContextKeyError, check_adata, check_model, check_query_labels, get_obs_column, get_obsm
from ._targets import cell_mask, targets

if TYPE_CHECKING:
    from anndata import AnnData

    from ..models import MMContextEncoder

COLUMNS = ["metric", "subject", "value"]
_KS = (1, 5, 10)


def ranking_metrics(scores: np.ndarray, relevant: np.ndarray, *, ks: Sequence[int] = _KS) -> dict[str, float]:
    """Mean recall@k, MRR and nDCG@10 of ranking candidates by ``scores`` (queries x candidates).

    ``relevant`` is a boolean matrix of the same shape; a query may have several relevant candidates
    (e.g. every cell with the same caption). recall@k is the fraction of relevant candidates in the top k,
    capped at k (1.0 when the top k are all relevant); MRR uses the first relevant candidate; nDCG@10 uses
    binary gains. Ties are broken by candidate order (stable), so results are deterministic.
    """
    order = np.argsort(-scores, axis=1, kind="stable")
    rel_sorted = np.take_along_axis(relevant, order, axis=1)
    n_rel = relevant.sum(axis=1)
    keep = n_rel > 0
    rel_sorted, n_rel = rel_sorted[keep], n_rel[keep]
    out: dict[str, float] = {}
    for k in ks:
        hits = rel_sorted[:, :k].sum(axis=1)
        out[f"recall@{k}"] = float(np.mean(hits / np.minimum(n_rel, k)))
    first = rel_sorted.argmax(axis=1)
    out["mrr"] = float(np.mean(1.0 / (first + 1)))
    discounts = 1.0 / np.log2(np.arange(2, 12))
    dcg = (rel_sorted[:, :10] * discounts[: rel_sorted[:, :10].shape[1]]).sum(axis=1)
    idcg = np.array([discounts[: min(int(r), 10)].sum() for r in n_rel])
    out["ndcg@10"] = float(np.mean(dcg / idcg))
    return out


def _classification(truth: np.ndarray, pred: np.ndarray) -> list[tuple[str, float]]:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, matthews_corrcoef

    labels = np.unique(truth)
    return [
        ("accuracy", accuracy_score(truth, pred)),
        ("balanced_accuracy", balanced_accuracy_score(truth, pred)),
        ("macro_f1", f1_score(truth, pred, average="macro", labels=labels, zero_division=0)),
        ("mcc", matthews_corrcoef(truth, pred)),
    ]


def _label_scores(adata: AnnData, truth: np.ndarray, scores_key: str) -> list[tuple]:
    """Per-label AUROC and cell-type-level metrics from the cells x labels score matrix."""
    from sklearn.metrics import roc_auc_score

    if not isinstance(adata.obsm[scores_key], pd.DataFrame):
        return []
    frame = read_frame(adata, scores_key)  # the label names as given, also after an h5ad round trip
    cols = [str(c) for c in frame.columns]
    S = frame.to_numpy(dtype=np.float64)
    rows: list[tuple] = []
    aucs = []
    for j, label in enumerate(cols):
        y = truth == label
        if y.any() and not y.all():
            auc = float(roc_auc_score(y, S[:, j]))
            aucs.append(auc)
            rows.append(("label_auroc", label, auc))
    if aucs:
        rows.append(("label_auroc", "mean", float(np.mean(aucs))))
    # cell-type level: a type's score for each label is that of its mean embedding (scores are linear in the
    # cell embedding; normalising the mean changes no ranking)
    types = [t for t in cols if (truth == t).any()]
    if len(types) >= 2:
        means = np.stack([S[truth == t].mean(axis=0) for t in types])
        relevant = np.array([[c == t for c in cols] for t in types])
        pred = np.array(cols)[means.argmax(axis=1)]
        rows.append(("type_accuracy", scores_key, float(np.mean(pred == np.array(types)))))
        rows.append(("type_mrr", scores_key, ranking_metrics(means, relevant)["mrr"]))
    return rows


def _retrieval(cells: np.ndarray, text_emb: np.ndarray, inverse: np.ndarray, subject: str) -> list[tuple]:
    rows: list[tuple] = []
    sim = cells @ text_emb.T  # cells x distinct captions
    relevant = inverse[:, None] == np.arange(text_emb.shape[0])[None, :]
    for name, value in ranking_metrics(sim, relevant).items():
        rows.append((f"cell_to_text_{name}", subject, value))
    for name, value in ranking_metrics(sim.T, relevant.T).items():
        rows.append((f"text_to_cell_{name}", subject, value))
    return rows


def _embedding_metrics(X: np.ndarray, truth: np.ndarray, key: str, n_neighbors: int, seed: int) -> list[tuple]:
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score
    from sklearn.neighbors import NearestNeighbors

    n_types = len(np.unique(truth))
    rows: list[tuple] = []
    k = min(n_neighbors, X.shape[0] - 1)
    if k >= 1:
        nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(X)
        idx = nn.kneighbors(X, return_distance=False)[:, 1:]
        rows.append(("knn_purity", key, float(np.mean(truth[idx] == truth[:, None]))))
    if 2 <= n_types < X.shape[0]:
        Xn = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        clusters = KMeans(n_clusters=n_types, n_init=10, random_state=seed).fit_predict(Xn)
        rows.append(("ari", key, float(adjusted_rand_score(truth, clusters))))
        rows.append(("nmi", key, float(normalized_mutual_info_score(truth, clusters))))
        rows.append(("silhouette", key, float(silhouette_score(X, truth, metric="cosine"))))
    return rows


def evaluate(
    adata: AnnData,
    *,
    label_key: str,
    pred_key: str = _keys.LABEL,
    queries: Mapping[str, Sequence[str]] | None = None,
    model: MMContextEncoder | None = None,
    caption_key: str | None = None,
    embedding_key: str = _keys.X_MMC,
    n_neighbors: int = 15,
    seed: int = 0,
) -> pd.DataFrame:
    """Score zero-shot labels, queries, retrieval and the joint embedding against the true labels in ``obs``.

    Every part runs when its inputs exist: labels when ``obs[pred_key]`` does, per-label AUROC and
    cell-type-level metrics when ``obsm[pred_key + '_scores']`` does (both from :func:`mmcontext.tl.annotate`),
    query AUROC for ``queries`` (scores from :func:`mmcontext.tl.query`), retrieval with ``model`` and captions,
    and embedding metrics when ``obsm[embedding_key]`` exists (from :func:`mmcontext.tl.embed`) or ``model``
    is given.

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
    model
        With a model, cells are embedded (if ``obsm[embedding_key]`` is missing) and the distinct captions
        encoded for retrieval in both directions.
    caption_key
        ``obs`` column of captions for retrieval; default: the one :func:`mmcontext.pp.prepare` wrote.
    embedding_key
        ``obsm`` key of the joint embedding.
    n_neighbors
        Neighbours for kNN purity.
    seed
        Seed of the k-means clustering behind ARI and NMI.

    Returns
    -------
    Tidy DataFrame with columns ``metric``, ``subject`` and ``value``:

    - ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``mcc`` of ``pred_key`` (subject ``pred_key``);
    - ``label_auroc`` per label (subject the label) and their ``"mean"``, from the score matrix;
    - ``type_accuracy`` and ``type_mrr`` (subject ``pred_key + '_scores'``): each true type's mean embedding
      ranked against the label texts;
    - ``auroc`` per query (subject the query text) and their ``"mean"``;
    - ``cell_to_text_*`` and ``text_to_cell_*`` (subject ``caption_key``): ``recall@1``, ``recall@5``,
      ``recall@10``, ``mrr``, ``ndcg@10``; identical captions are one candidate, and every cell with a caption
      is relevant to it;
    - ``knn_purity``, ``ari``, ``nmi``, ``silhouette`` of the joint embedding (subject ``embedding_key``).

    Examples
    --------
    >>> res = mmc.tl.evaluate(adata, label_key="bulk_labels", queries={"NK cells": ["CD56+ NK"]})  # doctest: +SKIP
    >>> res.query("metric == 'macro_f1'")  # doctest: +SKIP

    """
    from sklearn.metrics import roc_auc_score

    check_adata(adata)
    queries = check_query_labels(queries)
    if model is not None:
        check_model(model)
    col = get_obs_column(adata, label_key)
    known = col.notna().to_numpy()
    if not known.any():
        raise ValueError(f"adata.obs[{label_key!r}] has only missing values; nothing to evaluate against.")
    truth_all = col.astype(str).to_numpy()
    rows: list[tuple] = []
    if pred_key in adata.obs:
        pred = adata.obs[pred_key].astype(str).to_numpy()
        rows += [(m, pred_key, float(v)) for m, v in _classification(truth_all[known], pred[known])]
    scores_key = f"{pred_key}_scores"
    if scores_key in adata.obsm:
        sub = adata[known]
        rows += _label_scores(sub, truth_all[known], scores_key)
    aucs = []
    for text, positives in queries.items():
        key = _keys.query_key(text)
        if key not in adata.obs:
            raise MMContextKeyError(
                f"adata.obs[{key!r}] not found for query {text!r}; run `mmc.tl.query(adata, model, [{text!r}])` first."
            )
        scores = adata.obs[key].to_numpy()[known]
        y = np.isin(truth_all[known], list(positives))
        if y.all() or not y.any():
            raise ValueError(f"Query {text!r}: its labels {list(positives)!r} cover all or none of the cells.")
        auc = float(roc_auc_score(y, scores))
        aucs.append(auc)
        rows.append(("auroc", text, auc))
    if aucs:
        rows.append(("auroc", "mean", float(np.mean(aucs))))
    cells = None
    if embedding_key in adata.obsm:
        cells = get_obsm(adata, embedding_key)
    elif model is not None:
        from ._embed import joint_embedding

        cells = joint_embedding(adata, model)
    if model is not None and cells is not None:
        from ..pp._captions import caption_column

        caption_key = caption_column(adata, caption_key)
        caps = adata.obs[caption_key].astype(object).to_numpy()
        has = np.array([isinstance(c, str) and bool(c.strip()) for c in caps])
        if has.any():
            distinct, inverse = np.unique(caps[has].astype(str), return_inverse=True)
            text_emb = model.encode_text(list(distinct))
            rows += _retrieval(cells[has], text_emb, inverse, caption_key)
    if cells is not None:
        rows += _embedding_metrics(cells[known], truth_all[known], embedding_key, n_neighbors, seed)
    return pd.DataFrame(rows, columns=COLUMNS)


def classify_evaluate(
    adata: AnnData,
    *,
    label_key: str | Sequence[str],
    key_added: str = _keys.CLASSIFY,
    mask: str | Sequence[bool] | np.ndarray | None = None,
    task: str | None = None,
    return_predictions: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Score the predictions of :func:`classify` against the true labels.

    Parameters
    ----------
    adata
        Annotated data matrix after :func:`classify`.
    label_key
        The true labels, as given to :func:`fit_classifier`.
    key_added
        The ``key_added`` of :func:`classify`.
    mask
        Boolean array or ``obs`` column: the cells to score (e.g. the held-out cells); default all
        labelled cells.
    task
        Default: the task recorded by :func:`classify` (``uns['mmcontext']['classify']``).
    return_predictions
        Also return a per-cell DataFrame: ``truth``, ``prediction`` and the probability columns.

    Returns
    -------
    Tidy DataFrame with columns ``metric``, ``subject`` and ``value``.

    - classification: ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``mcc``, ``n``; for two classes also
      ``tp``, ``tn``, ``fp``, ``fn`` and ``auroc`` with the second class as positive (``subject``).
    - multilabel: ``subset_accuracy``, ``macro_f1``, ``micro_f1``, ``hamming_loss``, and per label
      (``subject``) ``f1``, ``mcc``, ``tp``, ``tn``, ``fp``, ``fn``, ``auroc``.
    - regression: ``r2``, ``mae``, ``rmse``, ``pearson_r``, ``n``.

    With ``return_predictions=True``, a tuple ``(metrics, predictions)``.

    Examples
    --------
    >>> head = mmc.tl.fit_classifier(train, model, label_key="bulk_labels")  # doctest: +SKIP
    >>> mmc.tl.classify(test, model, head)  # doctest: +SKIP
    >>> mmc.tl.classify_evaluate(test, label_key="bulk_labels")  # doctest: +SKIP

    """
    from sklearn import metrics as skm

    check_adata(adata)
    info = find_record(adata, "classify", key_added)
    if task is None:
        if not info:
            raise ValueError(f"No classify result recorded for key_added={key_added!r}; pass `task=`.")
        task = str(info["task"])
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
    pred_col = get_obs_column(adata, key_added)
    probs_key = f"{key_added}_probs"
    probs = read_frame(adata, probs_key) if probs_key in adata.obsm else None  # the class names as given
    if task != "regression" and probs is None:
        raise MMContextKeyError(
            f"adata.obsm[{probs_key!r}] not found; run `mmc.tl.classify(..., key_added={key_added!r})` first."
        )
    classes = [str(c) for c in probs.columns] if probs is not None else None
    sep = ";"
    if task == "multilabel":
        sep = str(find_record(adata, "fit_classifier").get("sep", ";"))
    y, labelled, classes = targets(adata, label_key, task, sep, classes=classes)
    sel = cell_mask(adata, mask) & labelled
    if task == "regression":
        sel &= np.isfinite(y)
    if not sel.any():
        raise ValueError("No labelled cells to score; check `mask=` and the label column.")
    rows: list[tuple[str, str, float]] = []
    if task == "classification":
        truth = np.asarray(get_obs_column(adata, label_key).astype(str))[sel]
        pred = pred_col.astype(str).to_numpy()[sel]
        rows += [(m, key_added, v) for m, v in _classification(truth, pred)]
        rows.append(("n", key_added, float(sel.sum())))
        if len(classes) == 2:
            pos = classes[1]
            t, p = truth == pos, pred == pos
            rows += _confusion(t, p, pos)
            if 0 < t.sum() < len(t):
                rows.append(("auroc", pos, skm.roc_auc_score(t, probs.to_numpy()[sel, 1])))
    elif task == "multilabel":
        P = probs.to_numpy()[sel]
        Y = y[sel].astype(bool)
        thr = float((info or find_record(adata, "classify")).get("threshold", 0.5))
        H = P >= thr
        rows += [
            ("subset_accuracy", key_added, float((H == Y).all(axis=1).mean())),
            ("macro_f1", key_added, skm.f1_score(Y, H, average="macro", zero_division=0)),
            ("micro_f1", key_added, skm.f1_score(Y, H, average="micro", zero_division=0)),
            ("hamming_loss", key_added, skm.hamming_loss(Y, H)),
            ("n", key_added, float(sel.sum())),
        ]
        for j, name in enumerate(classes):
            rows.append(("f1", name, skm.f1_score(Y[:, j], H[:, j], zero_division=0)))
            rows.append(("mcc", name, skm.matthews_corrcoef(Y[:, j], H[:, j])))
            rows += _confusion(Y[:, j], H[:, j], name)
            if 0 < Y[:, j].sum() < len(Y):
                rows.append(("auroc", name, skm.roc_auc_score(Y[:, j], P[:, j])))
    else:
        truth = y[sel]
        pred = pred_col.to_numpy(dtype=np.float64)[sel]
        r = float(np.corrcoef(truth, pred)[0, 1]) if truth.std() > 0 and pred.std() > 0 else float("nan")
        rows += [
            ("r2", key_added, skm.r2_score(truth, pred)),
            ("mae", key_added, skm.mean_absolute_error(truth, pred)),
            ("rmse", key_added, float(np.sqrt(skm.mean_squared_error(truth, pred)))),
            ("pearson_r", key_added, r),
            ("n", key_added, float(sel.sum())),
        ]
    table = pd.DataFrame(rows, columns=["metric", "subject", "value"])
    table["value"] = table["value"].astype(float)
    if not return_predictions:
        return table
    pred_df = pd.DataFrame(index=adata.obs_names[sel])
    if task == "multilabel":
        pred_df["truth"] = [sep.join(np.asarray(classes)[row.astype(bool)]) for row in y[sel]]
    else:
        pred_df["truth"] = np.asarray(get_obs_column(adata, label_key) if isinstance(label_key, str) else y)[sel]
    pred_df["prediction"] = pred_col.to_numpy()[sel]
    if probs is not None:
        pred_df = pred_df.join(probs.loc[pred_df.index].add_prefix("prob_"))
    return table, pred_df


def _confusion(truth: np.ndarray, pred: np.ndarray, subject: str) -> list[tuple[str, str, float]]:
    truth, pred = np.asarray(truth, dtype=bool), np.asarray(pred, dtype=bool)
    return [
        ("tp", subject, float((truth & pred).sum())),
        ("tn", subject, float((~truth & ~pred).sum())),
        ("fp", subject, float((~truth & pred).sum())),
        ("fn", subject, float((truth & ~pred).sum())),
    ]
