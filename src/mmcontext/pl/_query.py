"""Query scores on an embedding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from .. import _keys
from .._docs import doc_params
from .._errors import MMContextKeyError
from .._provenance import find_record
from ._utils import basis_key, finish, mark_heldout

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes


@doc_params("pl_embedding_kwargs")
def query(
    adata: AnnData,
    queries: str | Sequence[str] | None = None,
    *,
    basis: str = "umap",
    cmap: str = "viridis",
    scale: Literal["shared", "each"] | None = None,
    ncols: int = 3,
    mark_heldout_cells: bool | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    **kwargs: Any,
):
    """Plot the scores of :func:`mmcontext.tl.query` on an embedding, one panel per query.

    Each colour bar is labelled with what its number is (e.g. "cosine similarity"). With several queries the
    panels share one colour scale by default, so a weak answer (a query that tops out at 0.5) looks weak next to a
    strong one instead of being stretched to full colour; a query :func:`~mmcontext.tl.query` found far from
    everything the model was trained on is marked "(far from training)" in its title.

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
    scale
        ``"shared"``: one colour range (the smallest to the largest score of all panels); ``"each"``: every panel
        its own range. Default ``"shared"`` for several queries. ``vmin=`` / ``vmax=`` override both.
    ncols
        Panels per row.
    mark_heldout_cells
        Ring the cells that did not train the model (``obs['mmc_split']``, see :func:`mmcontext.tl.train`);
        default: when that column exists.
    ax
        Axes to draw into (one query only).
    show
        Show the figure (default: when matplotlib is interactive).
    return_fig
        Return the figure instead of the axes.
    **kwargs
        {pl_embedding_kwargs}

    Returns
    -------
    Axes (a list with several queries), or the figure with ``return_fig=True``; ``None`` when shown.

    Examples
    --------
    >>> mmc.pl.query(adata, "natural killer cells")  # doctest: +SKIP

    """
    import numpy as np
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
    if scale not in (None, "shared", "each"):
        raise ValueError(f"scale={scale!r} is not one of 'shared', 'each' or None.")
    if (scale or ("shared" if len(keys) > 1 else "each")) == "shared" and "vmin" not in kwargs and "vmax" not in kwargs:
        values = adata.obs[keys].to_numpy(dtype=float)
        kwargs["vmin"], kwargs["vmax"] = float(np.nanmin(values)), float(np.nanmax(values))
    per_query = dict(recorded.get("per_query", {}))
    far = [bool(per_query.get(k, {}).get("far")) for k in keys]
    titles = [f"{t} (far from training)" if f else t for t, f in zip(titles, far, strict=True)]
    key = basis_key(adata, basis)
    axes = sc.pl.embedding(
        adata, basis=key, color=keys, title=titles, cmap=cmap, ncols=ncols, ax=ax, show=False, **kwargs
    )
    for panel, k in zip(np.ravel(axes) if isinstance(axes, (list, np.ndarray)) else [axes], keys, strict=False):
        label_colorbar(panel, str(per_query.get(k, {}).get("score", "score")))
    mark_heldout(axes, adata, key, mark_heldout_cells)
    return finish(axes, show=show, return_fig=return_fig)


def label_colorbar(ax: Axes, label: str) -> None:
    """Name the colour bar of a scanpy scatter panel."""
    for artist in ax.collections:
        bar = getattr(artist, "colorbar", None)
        if bar is not None:
            bar.set_label(label)
            return
