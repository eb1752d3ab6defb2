"""Why a cell scored high for a name: the marker genes behind the score, as bars."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .. import _keys
from ._utils import finish

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes


def _explanations(adata: AnnData, names: Sequence[str] | None) -> list[tuple[str, dict]]:
    """``(title, explanation)`` per name: from ``uns['mmcontext']['markers']`` (queries) or annotate's labels."""
    uns = adata.uns.get(_keys.UNS, {})
    queries = {k: v for k, v in uns.get("markers", {}).items() if isinstance(v, dict) and "genes" in v}
    labels = {
        str(v.get("text", k)): v for k, v in uns.get("annotate", {}).get("markers", {}).items() if isinstance(v, dict)
    }
    if names is None:
        found = [(v.get("text", k), v) for k, v in queries.items()] or [(k, v) for k, v in labels.items()]
        if not found:
            raise ValueError(
                "No marker explanations in adata.uns['mmcontext']; run `mmc.tl.query(adata, model, [...])` "
                "(or `tl.annotate`) with markers on (the default) first."
            )
        return found
    out = []
    for name in [names] if isinstance(names, str) else list(names):
        key = name if name in queries else _keys.query_key(name)
        if key in queries:
            out.append((name, queries[key]))
        elif name in labels:
            out.append((name, labels[name]))
        else:
            raise KeyError(
                f"No marker explanation for {name!r} (looked for uns['mmcontext']['markers'][{key!r}] and the "
                "labels of tl.annotate); run `mmc.tl.query` or `mmc.tl.annotate` with this name and markers on."
            )
    return out


def markers(
    adata: AnnData,
    queries: str | Sequence[str] | None = None,
    *,
    ncols: int = 3,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
):
    """Show the marker genes behind the scores of :func:`mmcontext.tl.query` (or the labels of ``tl.annotate``).

    One panel per query: each marker gene used, with its mean standardised expression in the 50 best-scoring cells
    (bars) and in all cells (dots), the Cell Ontology term the query matched and the term whose markers were used
    (an ancestor's when the term has none of its own), and the weight the evidence got in the score.

    Parameters
    ----------
    adata
        Annotated data matrix after :func:`mmcontext.tl.query`, :func:`~mmcontext.tl.label_query` or
        :func:`~mmcontext.tl.annotate` with ``markers`` on.
    queries
        Query texts (or ``obs`` keys), or labels of ``tl.annotate``; default every explained query.
    ncols
        Panels per row.
    ax
        Axes to draw into (one query only).
    show
        Show the figure (default: when matplotlib is interactive).
    return_fig
        Return the figure instead of the axes.

    Returns
    -------
    Axes (a list with several queries), or the figure with ``return_fig=True``; ``None`` when shown.

    Examples
    --------
    >>> mmc.tl.query(adata, model, ["natural killer cells"])  # doctest: +SKIP
    >>> mmc.pl.markers(adata, "natural killer cells")  # doctest: +SKIP

    """
    import matplotlib.pyplot as plt

    found = _explanations(adata, queries)
    if ax is not None and len(found) > 1:
        raise ValueError("`ax` takes one query; leave it out to get a grid of panels.")
    if ax is None:
        n = len(found)
        cols = max(1, min(int(ncols), n))
        rows = int(np.ceil(n / cols))
        fig, grid = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
        axes = list(grid.ravel())
        for extra in axes[n:]:
            extra.set_visible(False)
    else:
        axes = [ax]
    for a, (title, info) in zip(axes, found, strict=False):
        genes = list(np.atleast_1d(info.get("genes", [])))
        genes = [str(g) for g in genes if str(g)]
        top = np.asarray(info.get("gene_z_top", []), dtype=float).ravel()
        allc = np.asarray(info.get("gene_z_all", []), dtype=float).ravel()
        term = str(info.get("term_name", "") or "no CL term")
        source = str(info.get("markers_from", "") or "")
        inherited = str(info.get("inherited", False)) in ("True", "true", "1")
        sub = f"{term}" + (f"\nmarkers from ancestor: {source}" if inherited and source else "")
        if not genes or len(top) != len(genes):
            a.text(0.5, 0.5, "no marker genes in the model's input", ha="center", va="center", transform=a.transAxes)
            a.set_xticks([])
            a.set_yticks([])
        else:
            y = np.arange(len(genes))
            a.barh(y, top, color="tab:purple", alpha=0.8, label="50 best cells")
            a.scatter(allc if len(allc) == len(genes) else np.zeros(len(genes)), y, color="k", s=14, label="all cells")
            a.axvline(0, color="grey", lw=0.8)
            a.set_yticks(y, genes)
            a.invert_yaxis()
            a.set_xlabel("standardised expression (training sd)")
            a.legend(loc="lower right", fontsize=7, frameon=False)
        a.set_title(f"{title}\n{sub}  (weight {float(info.get('weight', 0.0)):g})", fontsize=9)
    fig = axes[0].figure
    fig.tight_layout()
    return finish(axes if len(axes) > 1 else axes[0], show=show, return_fig=return_fig)
