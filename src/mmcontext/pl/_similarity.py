"""Mean label scores per group of cells, as a heatmap."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import _keys
from .._docs import doc_params
from .._errors import MMContextKeyError
from .._frames import read_frame
from ._utils import finish, new_axes

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes


def similarity_table(
    adata: AnnData, groupby: str, *, key: str = _keys.LABEL, standard_scale: str | None = None
) -> pd.DataFrame:
    """Mean score of each label (columns) over the cells of each group (rows), as drawn by :func:`similarity`."""
    scores_key = f"{key}_scores"
    if scores_key not in adata.obsm or not isinstance(adata.obsm[scores_key], pd.DataFrame):
        raise MMContextKeyError(
            f"adata.obsm[{scores_key!r}] not found; run `mmc.tl.annotate(adata, model, labels)` first."
        )
    if groupby not in adata.obs:
        raise MMContextKeyError(f"adata.obs[{groupby!r}] not found; pass a column such as 'leiden' or the true labels.")
    if standard_scale not in (None, "group", "label"):
        raise ValueError(f"standard_scale={standard_scale!r} is not one of 'group', 'label' or None.")
    scores = read_frame(adata, scores_key)  # the label names as given
    groups = adata.obs[groupby]
    table = scores.groupby(groups.to_numpy(), sort=True).mean()
    if hasattr(groups, "cat"):
        table = table.reindex([c for c in groups.cat.categories if c in table.index])
    table.index = table.index.astype(str)
    if standard_scale == "group":
        lo, hi = table.min(axis=1), table.max(axis=1)
        table = table.sub(lo, axis=0).div((hi - lo).replace(0, 1), axis=0)
    elif standard_scale == "label":
        lo, hi = table.min(axis=0), table.max(axis=0)
        table = (table - lo) / (hi - lo).replace(0, 1)
    return table


@doc_params("pl_common")
def similarity(
    adata: AnnData,
    groupby: str,
    *,
    key: str = _keys.LABEL,
    labels: Sequence[str] | None = None,
    standard_scale: str | None = "group",
    cmap: str = "viridis",
    annot: bool = True,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
):
    """Heatmap of the mean zero-shot score of each label (columns) in each group of cells (rows).

    Parameters
    ----------
    adata
        Annotated data matrix after :func:`mmcontext.tl.annotate` (reads ``obsm[key + '_scores']``).
    groupby
        ``obs`` column grouping the cells, e.g. clusters (``"leiden"``) or known labels.
    key
        The ``key_added`` of :func:`mmcontext.tl.annotate`.
    labels
        Columns to show, in this order (default: all labels).
    standard_scale
        Rescale each ``"group"`` (row) or ``"label"`` (column) to [0, 1], or `None` for raw cosine scores.
    cmap
        Colour map.
    annot
        Write the values into the cells.
    ax, show, return_fig
        {pl_common}

    Returns
    -------
    Axes, or the figure with ``return_fig=True``; ``None`` when shown.

    Examples
    --------
    >>> mmc.pl.similarity(adata, "leiden")  # doctest: +SKIP

    """
    table = similarity_table(adata, groupby, key=key, standard_scale=standard_scale)
    if labels is not None:
        missing = [lab for lab in labels if lab not in table.columns]
        if missing:
            raise MMContextKeyError(f"Labels {missing!r} are not columns of adata.obsm[{key + '_scores'!r}].")
        table = table[list(labels)]
    n_rows, n_cols = table.shape
    ax = new_axes(ax, figsize=(1.0 + 0.55 * n_cols, 1.0 + 0.4 * n_rows))
    image = ax.imshow(table.to_numpy(), aspect="auto", cmap=cmap)
    ax.set_xticks(np.arange(n_cols), labels=list(table.columns), rotation=90)
    ax.set_yticks(np.arange(n_rows), labels=list(table.index))
    ax.set_xlabel("label")
    ax.set_ylabel(groupby)
    if annot:
        values = table.to_numpy()
        mid = (np.nanmax(values) + np.nanmin(values)) / 2
        for i in range(n_rows):
            for j in range(n_cols):
                ax.text(
                    j,
                    i,
                    f"{values[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if values[i, j] > mid else "white",
                )
    ax.figure.colorbar(image, ax=ax, label="scaled mean score" if standard_scale else "mean score")
    return finish(ax, show=show, return_fig=return_fig)
