"""Query scores on an embedding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import _keys
from .._errors import MMContextKeyError
from .._provenance import find_record
from ._utils import basis_key, finish

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes


def query(
    adata: AnnData,
    queries: str | Sequence[str] | None = None,
    *,
    basis: str = "umap",
    cmap: str = "viridis",
    ncols: int = 3,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    **kwargs: Any,
):
    """Plot the scores of :func:`mmcontext.tl.query` on an embedding, one panel per query.

    Parameters
    ----------
    adata
        Annotated data matrix after :func:`mmcontext.tl.query`.
    queries
        Query texts (or their ``obs`` column names); default: every query scored so far.
    basis
        2-D embedding in ``obsm`` (``"umap"`` reads ``obsm['X_umap']``; ``"mmc_umap"`` the joint UMAP of
        :func:`mmcontext.pl.embedding`).
    cmap
        Colour map of the scores.
    ncols
        Panels per row.
    ax
        Axes to draw into (one query only).
    show
        Show the figure (default: when matplotlib is interactive).
    return_fig
        Return the figure instead of the axes.
    **kwargs
        Passed to :func:`scanpy.pl.embedding`.

    Returns
    -------
    Axes (a list with several queries), or the figure with ``return_fig=True``; ``None`` when shown.

    Examples
    --------
    >>> mmc.pl.query(adata, "natural killer cells")  # doctest: +SKIP

    """
    import scanpy as sc

    recorded = find_record(adata, "query")
    if queries is None:
        keys = list(recorded.get("keys", []))
        titles = list(recorded.get("queries", keys))
        if not keys:
            raise ValueError("No query scores in adata.obs; run `mmc.tl.query(adata, model, [...])` first.")
    else:
        queries = [queries] if isinstance(queries, str) else list(queries)
        keys = [q if q in adata.obs else _keys.query_key(q) for q in queries]
        titles = queries
    missing = [q for q, k in zip(titles, keys, strict=True) if k not in adata.obs]
    if missing:
        raise MMContextKeyError(
            f"No scores for {missing!r} in adata.obs (looked for {[_keys.query_key(q) for q in missing]!r}); "
            "run `mmc.tl.query(adata, model, [...])` with these queries first."
        )
    if ax is not None and len(keys) > 1:
        raise ValueError("`ax` takes one query; leave it out to get a grid of panels.")
    key = basis_key(adata, basis)
    axes = sc.pl.embedding(
        adata, basis=key, color=keys, title=titles, cmap=cmap, ncols=ncols, ax=ax, show=False, **kwargs
    )
    return finish(axes, show=show, return_fig=return_fig)
