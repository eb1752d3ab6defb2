"""What every mmcontext plot shares: showing or returning, and finding a 2-D basis."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import MMContextKeyError

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes


def finish(axes, *, show: bool | None, return_fig: bool):
    """Show the figure when asked (scanpy's default: when interactive) and return axes or the figure."""
    import matplotlib.pyplot as plt
    import numpy as np

    first = np.ravel(axes)[0] if isinstance(axes, (list, np.ndarray)) else axes
    fig = first.figure
    if show is None:
        show = plt.isinteractive()
    if show:
        plt.show()
    if return_fig:
        return fig
    return None if show else axes


def basis_key(adata: AnnData, basis: str) -> str:
    """Return the ``obsm`` key for ``basis`` (``"umap"`` or ``"X_umap"``), or raise saying how to compute it."""
    key = basis if basis in adata.obsm else f"X_{basis}"
    if key not in adata.obsm:
        raise MMContextKeyError(
            f"adata.obsm[{key!r}] not found. Compute it first, e.g. `sc.pp.neighbors(adata); sc.tl.umap(adata)`, "
            f"or pass `basis=` one of {list(adata.obsm.keys())!r}."
        )
    return key


def new_axes(ax: Axes | None, *, figsize=(5, 4)) -> Axes:
    """``ax`` or a new figure's axes."""
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax
    _, ax = plt.subplots(figsize=figsize)
    return ax
