"""Zero-shot labels and their confidence on an embedding."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import _keys
from .._docs import doc_params
from .._errors import MMContextKeyError
from ._utils import basis_key, finish

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes


@doc_params("pl_embedding_kwargs")
def annotate(
    adata: AnnData,
    key: str = _keys.LABEL,
    *,
    confidence: str | None = "margin",
    basis: str = "umap",
    cmap: str = "viridis",
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    **kwargs: Any,
):
    """Plot the labels of :func:`mmcontext.tl.annotate` and how confident each cell's label is.

    Parameters
    ----------
    adata
        Annotated data matrix after :func:`mmcontext.tl.annotate`.
    key
        The ``key_added`` of :func:`mmcontext.tl.annotate`.
    confidence
        Second panel: ``"margin"`` (the label's score minus the best other score), ``"score"`` (the label's score),
        ``"probability"`` (its calibrated probability, written for models trained with validation cells), or
        `None` for the labels alone.
    basis
        2-D embedding in ``obsm`` (``"umap"`` reads ``obsm['X_umap']``).
    cmap
        Colour map of the confidence panel.
    ax
        Axes to draw into (only with ``confidence=None``: one panel).
    show, return_fig
        As in :func:`mmcontext.pl.query`.
    **kwargs
        {pl_embedding_kwargs}

    Returns
    -------
    Axes (a list of two with a confidence panel), or the figure with ``return_fig=True``; ``None`` when shown.

    Examples
    --------
    >>> mmc.tl.annotate(adata, model, "bulk_labels")  # doctest: +SKIP
    >>> mmc.pl.annotate(adata)  # doctest: +SKIP

    """
    import scanpy as sc

    if key not in adata.obs:
        raise MMContextKeyError(f"adata.obs[{key!r}] not found; run `mmc.tl.annotate(adata, model, labels)` first.")
    if confidence not in (None, "margin", "score", "probability"):
        raise ValueError(f"confidence={confidence!r} is not one of 'margin', 'score', 'probability' or None.")
    color = [key]
    titles = [key]
    if confidence is not None:
        conf_key = f"{key}_{confidence}"
        if conf_key not in adata.obs:
            hint = (
                " (probabilities need a model trained with validation cells, and `calibrate=True`)"
                if confidence == "probability"
                else ""
            )
            raise MMContextKeyError(
                f"adata.obs[{conf_key!r}] not found; run `mmc.tl.annotate(adata, model, labels)` first{hint}."
            )
        color.append(conf_key)
        titles.append(f"{key} {confidence}")
    if ax is not None and len(color) > 1:
        raise ValueError("`ax` takes one panel; pass `confidence=None` or leave `ax` out.")
    kwargs.setdefault("wspace", 0.6)  # room for the label legend between the panels
    axes = sc.pl.embedding(
        adata, basis=basis_key(adata, basis), color=color, title=titles, cmap=cmap, ax=ax, show=False, **kwargs
    )
    return finish(axes, show=show, return_fig=return_fig)
