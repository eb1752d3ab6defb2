"""The tidy results of :func:`mmcontext.tl.evaluate`, as bars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._docs import doc_params
from .._errors import MMContextKeyError
from ._utils import finish, new_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: Metrics drawn by default (those present in the results).
DEFAULT_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "mcc",
    "label_auroc",
    "type_accuracy",
    "auroc",
    "cell_to_text_recall@1",
    "text_to_cell_recall@1",
    "cell_to_text_mrr",
    "text_to_cell_mrr",
    "knn_purity",
    "ari",
    "nmi",
)


def _tidy(results: pd.DataFrame | Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    if isinstance(results, Mapping):
        frames = [df.assign(method=str(name)) for name, df in results.items()]
        if not frames:
            raise ValueError("results is empty; pass the DataFrame of `mmc.tl.evaluate` or a dict of them.")
        results = pd.concat(frames, ignore_index=True)
    if not isinstance(results, pd.DataFrame) or not {"metric", "subject", "value"} <= set(results.columns):
        raise ValueError("results must be the DataFrame of `mmc.tl.evaluate` (columns metric, subject, value).")
    results = results.copy()
    if "method" not in results:
        results["method"] = ""
    return results


#: Metrics with one row per label or query (and their ``"mean"``).
_PER_SUBJECT = ("auroc", "label_auroc")


def _row_name(metric: str, subject: str) -> str:
    if metric in _PER_SUBJECT:
        name = "query auroc" if metric == "auroc" else "label auroc"
        return f"{name} (mean)" if subject == "mean" else f"{name} ({subject})"
    return metric


@doc_params("pl_common")
def evaluate(
    results: pd.DataFrame | Mapping[str, pd.DataFrame],
    *,
    metrics: Sequence[str] | None = None,
    subjects: Sequence[str] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
):
    """Draw the results of :func:`mmcontext.tl.evaluate` as horizontal bars, one group per metric.

    Parameters
    ----------
    results
        The DataFrame returned by :func:`mmcontext.tl.evaluate`, or ``{method name: DataFrame}`` to compare
        several methods side by side (a ``method`` column works too).
    metrics
        Metrics to draw (default: those of :data:`DEFAULT_METRICS` present).
    subjects
        Rows to draw per metric, by ``subject`` (e.g. query texts). Default: summaries only (``label_auroc``
        and the query ``auroc`` are drawn as their ``"mean"``).
    ax, show, return_fig
        {pl_common}

    Returns
    -------
    Axes, or the figure with ``return_fig=True``; ``None`` when shown.

    Examples
    --------
    >>> res = mmc.tl.evaluate(adata, label_key="bulk_labels")  # doctest: +SKIP
    >>> mmc.pl.evaluate(res)  # doctest: +SKIP

    """
    df = _tidy(results)
    if metrics is None:
        metrics = [m for m in DEFAULT_METRICS if m in set(df["metric"])]
    else:
        unknown = [m for m in metrics if m not in set(df["metric"])]
        if unknown:
            raise MMContextKeyError(
                f"Metrics {unknown!r} are not in the results; available: {sorted(set(df['metric']))!r}."
            )
    df = df[df["metric"].isin(metrics)]
    if subjects is not None:
        df = df[df["subject"].isin(subjects)]
    else:
        df = df[~df["metric"].isin(_PER_SUBJECT) | (df["subject"] == "mean")]
    if df.empty:
        raise ValueError("Nothing to draw: no rows match `metrics` and `subjects`.")
    df = df.assign(row=[_row_name(m, sub) for m, sub in zip(df["metric"], df["subject"], strict=True)])
    rows = list(dict.fromkeys(df["row"]))
    methods = list(dict.fromkeys(df["method"]))
    height = 0.8 / len(methods)
    ax = new_axes(ax, figsize=(6, 0.3 + 0.3 * len(rows) * max(1, len(methods) * 0.6)))
    y = np.arange(len(rows))
    for i, method in enumerate(methods):
        sub = df[df["method"] == method].groupby("row", sort=False)["value"].mean().reindex(rows)
        ax.barh(y + (i - (len(methods) - 1) / 2) * height, sub.to_numpy(), height=height, label=method or None)
    ax.set_yticks(y, labels=rows)
    ax.invert_yaxis()
    ax.set_xlabel("value")
    ax.set_xlim(min(0.0, float(df["value"].min())), max(1.0, float(df["value"].max())))
    if len(methods) > 1:
        ax.legend(frameon=False, loc="lower right")
    ax.spines[["top", "right"]].set_visible(False)
    return finish(ax, show=show, return_fig=return_fig)
