"""The joint embedding, drawn as a UMAP."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import _keys
from .._docs import doc_params
from .._errors import MMContextKeyError
from .._logging import log_added
from ._utils import finish
from ._utils import mark_heldout as mark_heldout_cells

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes

#: ``obsm`` key of the UMAP of the joint embedding.


@doc_params("pl_common", "pl_embedding_kwargs")
def embedding(
    adata: AnnData,
    color: str | Sequence[str] | None = None,
    *,
    rep: str = _keys.X_MMC,
    basis: str = _keys.MMC_UMAP,
    mark_heldout: bool | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    **kwargs: Any,
):
    """Plot a UMAP of the joint embedding, coloured by ``obs`` columns.

    The UMAP of ``obsm[rep]`` is computed once (without touching the user's ``X_umap`` or neighbour
    graph) and stored in ``obsm[basis]``.

    Parameters
    ----------
    adata
        Annotated data matrix after :func:`mmcontext.tl.embed`.
    color
        ``obs`` columns or genes to colour by.
    rep
        ``obsm`` key of the joint embedding.
    basis
        ``obsm`` key of its 2-D UMAP (computed when absent).
    mark_heldout
        Ring the cells that did not train the model (``obs['mmc_split']`` is ``"validation"`` or ``"unseen"``),
        so training cells are not mistaken for held-out ones. Default: when ``obs['mmc_split']`` exists.
    ax, show, return_fig
        {pl_common}
    **kwargs
        {pl_embedding_kwargs}

    Returns
    -------
    Axes, or the figure with ``return_fig=True``; ``None`` when shown. Writes ``adata.obsm[basis]`` when absent.

    """
    import scanpy as sc
    from anndata import AnnData

    if basis not in adata.obsm:
        if rep not in adata.obsm:
            raise MMContextKeyError(f"adata.obsm[{rep!r}] not found; run `mmc.tl.embed(adata, model)` first.")
        tmp = AnnData(obs=adata.obs[[]].copy(), obsm={rep: adata.obsm[rep]})
        sc.pp.neighbors(tmp, use_rep=rep, random_state=0)
        sc.tl.umap(tmp, random_state=0)
        adata.obsm[basis] = tmp.obsm["X_umap"]
        log_added((basis, "obsm"))
    kwargs.setdefault("wspace", 0.7)  # room for long categorical legends between panels
    axes = sc.pl.embedding(adata, basis=basis, color=color, ax=ax, show=False, **kwargs)
    mark_heldout_cells(axes, adata, basis, mark_heldout)
    return finish(axes, show=show, return_fig=return_fig)
