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


def mark_heldout(axes, adata: AnnData, basis: str, mark: bool | None) -> int:
    """Ring the cells that did not train the model (``obs['mmc_split']`` not ``"train"``) on every panel.

    ``mark=None`` rings them when ``adata.obs['mmc_split']`` exists and holds training and other cells. Returns the
    number of cells ringed per panel (0: nothing drawn).
    """
    import numpy as np

    from .. import _keys

    if mark is False or _keys.SPLIT not in adata.obs:
        if mark:
            raise KeyError(
                f"adata.obs[{_keys.SPLIT!r}] not found; it is written by `mmc.tl.train` and by `mmc.tl.embed` with "
                "the model trained on these cells."
            )
        return 0
    held = (adata.obs[_keys.SPLIT].astype(str) != "train").to_numpy()
    if not held.any() or held.all():
        return 0
    xy = np.asarray(adata.obsm[basis])[held, :2]
    for ax in np.ravel(axes) if isinstance(axes, (list, np.ndarray)) else [axes]:
        ax.scatter(xy[:, 0], xy[:, 1], s=14, facecolors="none", edgecolors="black", linewidths=0.4, zorder=3)
        ax.text(
            0.01,
            0.01,
            f"ringed: {int(held.sum())} held-out cells (did not train the model)",
            transform=ax.transAxes,
            fontsize=7,
        )
    return int(held.sum())


def new_axes(ax: Axes | None, *, figsize=(5, 4)) -> Axes:
    """``ax`` or a new figure's axes."""
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax
    _, ax = plt.subplots(figsize=figsize)
    return ax
