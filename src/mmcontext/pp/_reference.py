"""Project a new dataset into the initial embedding space a model (or a prepared AnnData) was trained on."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy import sparse

from .. import _keys
from .._logging import logger

if TYPE_CHECKING:
    from anndata import AnnData

#: ``varm`` key of the PCA loadings written by :func:`mmcontext.pp.prepare`.


@dataclass
class InputSpace:
    """How an initial embedding is computed from expression: a gene panel, or PCA loadings over genes."""

    method: str
    genes: np.ndarray
    loadings: np.ndarray | None = None
    mean: np.ndarray | None = None
    #: Per-feature training mean of the initial embedding (fills missing panel genes with ``fill="mean"``).
    feature_mean: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        """Length of the initial embedding vectors."""
        return len(self.genes) if self.loadings is None else self.loadings.shape[1]

    def arrays(self) -> dict[str, np.ndarray]:
        """Keyword arguments for :meth:`mmcontext.models.OmicsEncoder.set_input_arrays`."""
        out: dict[str, np.ndarray] = {"genes": self.genes}
        if self.loadings is not None:
            out.update(loadings=self.loadings, mean=self.mean)
        return out


def space_from_adata(adata: AnnData, key: str | None = None) -> InputSpace | None:
    """The input space :func:`mmcontext.pp.prepare` recorded in ``adata`` (``None`` if not gene-based).

    ``key`` is the ``obsm`` key of the initial embedding; the record is only used when it describes that key.
    """
    prep = adata.uns.get(_keys.UNS, {}).get("prepare", {})
    if key is not None and prep.get("init_key") != key:
        return None
    method = prep.get("method")
    genes = prep.get("genes")
    if method not in ("genes", "pca") or genes is None:
        return None
    genes = np.asarray([str(g) for g in genes], dtype=str)
    params = {k: prep[k] for k in ("method", "layer", "n_components") if k in prep}
    init = adata.obsm.get(prep.get("init_key", _keys.X_INIT))
    feature_mean = np.asarray(init, dtype=np.float64).mean(axis=0).astype(np.float32) if init is not None else None
    if method == "genes":
        return InputSpace("genes", genes, feature_mean=feature_mean, params=params)
    if _keys.PCA_LOADINGS not in adata.varm:
        return None
    loadings = np.asarray(adata.varm[_keys.PCA_LOADINGS], dtype=np.float32)
    mean = np.asarray(prep.get("mean", np.zeros(len(genes))), dtype=np.float32)
    if loadings.shape[0] != len(genes):
        # A gene subset of the prepared AnnData: the loadings follow var_names.
        genes = np.asarray(adata.var_names.astype(str))
        if mean.shape[0] != len(genes):
            return None
    return InputSpace("pca", genes, loadings=loadings, mean=mean, feature_mean=feature_mean, params=params)


def space_from_model(model: Any) -> InputSpace | None:
    """The input space an :class:`~mmcontext.models.MMContextEncoder` (or its omics tower) carries."""
    omics = getattr(model, "omics_encoder", model)
    arrays = getattr(omics, "input_arrays", None)
    if not arrays or "genes" not in arrays:
        return None
    params = dict(getattr(omics, "input_space", {}) or {})
    feature_mean = omics.input_mean.detach().cpu().numpy().astype(np.float32)
    if "loadings" in arrays:
        return InputSpace(
            "pca",
            arrays["genes"],
            loadings=arrays["loadings"],
            mean=arrays["mean"],
            feature_mean=feature_mean,
            params=params,
        )
    return InputSpace("genes", arrays["genes"], feature_mean=feature_mean, params=params)


def resolve_space(reference: Any) -> InputSpace:
    """The input space of ``reference`` (a model or a prepared AnnData), or an error saying how to get one."""
    from anndata import AnnData

    if isinstance(reference, AnnData):
        space = space_from_adata(reference)
        if space is None:
            raise ValueError(
                "The reference AnnData has no gene-based initial embedding: run `mmc.pp.prepare(reference)` with "
                "method='genes' or 'pca' first (an existing obsm key given as use_rep= cannot be rebuilt from genes)."
            )
        return space
    if hasattr(reference, "omics_encoder") or hasattr(reference, "input_arrays"):
        space = space_from_model(reference)
        if space is None:
            raise ValueError(
                "The reference model carries no gene panel or PCA loadings (it was trained on an obsm key given as "
                "use_rep=, or built by hand). Prepare new data the way its training data was prepared, or set the "
                "space with `model.omics_encoder.set_input_arrays(genes=..., loadings=..., mean=...)`."
            )
        return space
    raise TypeError(f"reference must be an MMContextEncoder or a prepared AnnData, got {type(reference).__name__}.")


def reference_layer(space: InputSpace, layer: str | None) -> str | None:
    """The expression layer a reference space is rebuilt from: ``layer``, else the one it was prepared on, else X."""
    ref_layer = space.params.get("layer")
    return layer if layer is not None or ref_layer in (None, "None") else ref_layer


def match_genes(var_names: Any, space: InputSpace, *, fill: str = "mean") -> np.ndarray:
    """Position in ``var_names`` of each of ``space``'s genes (-1 where missing), or an error saying how to fix it."""
    import pandas as pd

    if fill not in ("mean", "zero"):
        raise ValueError(f"fill={fill!r} is not one of 'mean', 'zero'.")
    names = pd.Index(np.asarray(var_names).astype(str))
    if not names.is_unique:
        dup = names[names.duplicated()][:3].tolist()
        raise ValueError(f"var_names are not unique (e.g. {dup!r}); run `adata.var_names_make_unique()` first.")
    pos = names.get_indexer(space.genes)
    if not (pos >= 0).any():
        raise ValueError(
            f"None of the reference's {len(space.genes)} genes are in adata.var_names "
            f"(e.g. {space.genes[:3].tolist()!r} vs {names[:3].tolist()!r}); the gene identifiers must match "
            "(symbols vs Ensembl ids?)."
        )
    return pos


def project(
    X: Any,
    var_names: Any,
    space: InputSpace,
    *,
    fill: Literal["mean", "zero"] = "mean",
) -> tuple[np.ndarray, int]:
    """Rebuild ``space``'s features from expression ``X`` (cells x ``var_names``), matching genes by name.

    Missing genes are filled with the reference value (``fill="mean"``: the training mean of that
    panel feature, or the PCA centring mean, so a missing gene adds nothing to the PCA scores) or with 0.

    Returns
    -------
    The float32 initial embedding (cells x ``space.n_features``) and the number of missing genes.

    """
    pos = match_genes(var_names, space, fill=fill)
    found = pos >= 0
    n_missing = int((~found).sum())
    if n_missing == 0:  # the usual case: one column selection (none if the genes are in order), no masked writes
        same = len(pos) == X.shape[1] and bool((pos == np.arange(len(pos))).all())
        cols = X if same else X[:, pos]
        if sparse.issparse(cols):
            G = cols.toarray().astype(np.float32, copy=False)
        else:  # always a new array: the result never shares memory with adata.X
            G = np.array(cols, dtype=np.float32) if same else np.asarray(cols, dtype=np.float32)
    else:
        cols = X[:, pos[found]]
        cols = cols.toarray() if sparse.issparse(cols) else np.asarray(cols)
        G = np.empty((X.shape[0], len(space.genes)), dtype=np.float32)
        G[:, found] = cols
    if space.loadings is None:
        if n_missing:
            G[:, ~found] = space.feature_mean[~found] if fill == "mean" and space.feature_mean is not None else 0.0
        return G, n_missing
    mean = space.mean if space.mean is not None else np.zeros(len(space.genes), np.float32)
    if n_missing:
        G[:, ~found] = mean[~found] if fill == "mean" else 0.0
    G -= mean
    scores = G @ space.loadings
    return scores.astype(np.float32, copy=False), n_missing


def project_chunks(
    X: Any,
    var_names: Any,
    space: InputSpace,
    *,
    fill: Literal["mean", "zero"] = "mean",
    chunk_size: int = 10_000,
    what: str = "adata.X",
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, init)``: :func:`project` of ``X``'s rows ``start : start + chunk_size``, chunk after chunk.

    ``X`` is anything sliced by rows into an in-memory matrix: a numpy array, a scipy sparse matrix, or the
    ``X`` of a backed AnnData (an h5py dataset or anndata's on-disk sparse dataset), so at most ``chunk_size``
    rows of expression are in memory at a time, and never densified beyond the gene panel. Each chunk is checked
    (numeric, finite) before it is projected; the first 2000 rows are checked for raw counts as
    :func:`mmcontext.pp.prepare` does.
    """
    from .._validation import check_expression_values, check_log_normalised

    n_obs = X.shape[0]
    for start in range(0, n_obs, chunk_size):
        rows = X[start : start + chunk_size]
        if sparse.issparse(rows) and rows.format != "csr":
            rows = rows.tocsr()
        check_expression_values(rows, what=what, start=start)
        if start == 0:
            check_log_normalised(rows if chunk_size >= 2000 else X[:2000], what=what)
        init, _ = project(rows, var_names, space, fill=fill)
        yield start, init


def log_missing(n_missing: int, n_genes: int) -> None:
    """One log line about reference genes absent from the new data."""
    if n_missing:
        logger.warning(
            "%d of %d reference genes are not in adata.var_names; filled with the reference value.", n_missing, n_genes
        )
    else:
        logger.info("all %d reference genes found in adata.var_names", n_genes)
