"""Initial embeddings: the vectors the omics tower reads, written to ``obsm``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy import sparse

from .. import _keys
from .._docs import doc_params
from .._logging import log_added, logger
from .._provenance import find_record, mark_outputs, record
from .._validation import (
    MMContextKeyError,
    as_float_matrix,
    check_adata,
    check_expression_values,
    check_outputs,
    check_texts,
    check_unique_names,
    check_writable,
    get_obsm,
    warn_if_scaled,
)
from ._captions import caption_texts, resolve_caption_keys
from ._source import expression_source

if TYPE_CHECKING:
    from anndata import AnnData


def _expression(adata: AnnData, layer: str | None, *, normalize: bool = False):
    """The checked, log-normalised expression the input is built from: ``(matrix, source)``."""
    if adata.n_vars == 0:
        raise ValueError(f"The AnnData has 0 genes (shape {adata.shape}); PCA needs expression values.")
    src = expression_source(adata, layer, normalize=normalize)
    check_expression_values(src.X, what=src.what, fix="clean the data before `prepare`")
    return src.rows(src.X), src


def _pca(X, n_components: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (scores, components, mean) of a PCA of ``X`` (dense or sparse), deterministic for ``seed``."""
    from sklearn.decomposition import PCA

    n_components = min(n_components, X.shape[0] - 1, X.shape[1])
    if n_components < 1:
        raise ValueError(f"PCA needs at least 2 cells and 1 gene, got shape {X.shape}.")
    if sparse.issparse(X) and min(X.shape) - 1 < n_components:
        X = X.toarray()  # too small for the sparse solver (it needs k < min(shape)); dense PCA handles it
    if sparse.issparse(X):
        mean = np.asarray(X.mean(axis=0)).ravel()
        # Implicit centring keeps the matrix sparse: an SVD of X with the mean removed on the fly.
        from scipy.sparse.linalg import LinearOperator, svds

        Xc = X.astype(np.float64)

        def matvec(v):
            v = np.ravel(v)
            return Xc @ v - mean @ v

        def rmatvec(v):
            v = np.ravel(v)
            return Xc.T @ v - mean * v.sum()

        op = LinearOperator(Xc.shape, matvec=matvec, rmatvec=rmatvec, dtype=np.float64)
        rng = np.random.default_rng(seed)
        k = min(n_components, min(X.shape) - 1)
        u, s, vt = svds(op, k=k, v0=rng.standard_normal(min(X.shape)))
        order = np.argsort(-s)
        u, s, vt = u[:, order], s[order], vt[order]
        signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
        u, vt = u * signs, vt * signs[:, None]
        return (u * s).astype(np.float32), vt.astype(np.float32), mean.astype(np.float32)
    # exact solvers where affordable: the randomized one drifts on trailing components
    solver = "covariance_eigh" if X.shape[1] <= 5000 else "randomized"
    pca = PCA(n_components=n_components, svd_solver=solver, random_state=seed)
    scores = pca.fit_transform(np.asarray(X, dtype=np.float64))
    return scores.astype(np.float32), pca.components_.astype(np.float32), pca.mean_.astype(np.float32)


@doc_params("overwrite", "copy", "returns_copy")
def prepare(
    adata: AnnData,
    *,
    method: Literal["genes", "pca"] = "genes",
    use_rep: str | None = None,
    n_components: int = 50,
    genes: Sequence[str] | None = None,
    reference: Any = None,
    fill: Literal["mean", "zero"] = "mean",
    layer: str | None = None,
    normalize: bool = False,
    orthologs: Any = None,
    caption_keys: Mapping[str, str] | Sequence[str] | str | None = None,
    caption_template: str | None = None,
    ontology: bool = True,
    key_added: str = _keys.X_INIT,
    caption_key_added: str = _keys.CAPTION,
    seed: int = 0,
    overwrite: bool = False,
    copy: bool = False,
) -> AnnData | None:
    """Write the initial embedding and the captions that training and inference read.

    Parameters
    ----------
    adata
        Annotated data matrix; ``adata.X`` (or ``layer``) log-normalised or scaled for ``method="pca"``.
    method
        ``"genes"`` (default): the expression of a gene panel as is (``genes``; default all genes when there
        are at most 4096, else ``var['highly_variable']`` or the 2048 most variable genes) — the input that
        aligned best in our benchmarks and that projects new data by gene name;
        ``"pca"``: PCA of the expression matrix (loadings kept in ``varm``).
        Ignored when ``use_rep`` is given.
    use_rep
        An existing ``obsm`` key (``"X_pca"``, ``"X_scvi"``, ``"X_geneformer"``, ...) used as the initial
        embedding as is; nothing is copied, the key is recorded for :func:`mmcontext.tl.train`.
    n_components
        Number of principal components for ``method="pca"``.
    genes
        Gene panel for ``method="genes"`` (names in ``var_names``; missing genes are filled with 0 and reported).
    reference
        A trained :class:`~mmcontext.models.MMContextEncoder` or a prepared AnnData: rebuild *its* initial
        embedding (same gene panel, or same PCA loadings and mean) from this data's expression, matching genes
        by name, so the model can embed it. ``method``, ``genes`` and ``n_components`` are then ignored.
    fill
        With ``reference``: value for reference genes missing here — ``"mean"`` (the reference's training mean of
        that feature; for PCA the centring mean, so the gene adds nothing) or ``"zero"``. The count is logged
        and recorded as ``n_missing_genes``.
    layer
        Expression layer to use instead of ``adata.X``. Without it, a scaled ``adata.X`` (negative values, centred
        genes, as ``sc.pp.scale`` leaves it) with ``adata.raw`` holding the log-normalised expression of the same
        cells reads ``adata.raw`` instead, and says so in the log and in ``uns`` (``source``, ``used_raw``).
    normalize
        The expression holds raw counts: log-normalise each cell (``normalize_total`` to 1e4, ``log1p``) before
        use. ``adata.X`` itself is left as it is. Without it, raw counts are an error.
    orthologs
        With ``reference``, when this data is another species than the model's: an ortholog table mapping the
        reference's genes to this data's genes -- a species name (``"mouse"``, ``"pig"``, ``"rhesus"``,
        ``"cynomolgus"``: the Ensembl tables the optional ``celltypist`` package ships, ``pip install
        mmcontext[orthologs]``), a CSV path or DataFrame with two columns (reference gene, this data's gene), or a
        dict ``{reference gene: gene here}``. One-to-many partners resolve to the one spelled like the reference
        gene, and reference genes the table leaves unmapped are matched to a gene of the same symbol up to case
        (``CCL5`` -> ``Ccl5``); see :func:`mmcontext.pp.ortholog_map`. Genes still missing are filled as ``fill`` says.
    caption_keys
        Metadata columns for captions, see :func:`mmcontext.pp.captions`; ``None`` detects them.
        Pass ``False`` to skip captions.
    caption_template
        Custom caption format string over ``obs`` columns, see :func:`mmcontext.pp.captions`.
    ontology
        Enrich cell type names in captions with the Cell Ontology.
    key_added
        ``obsm`` key of the initial embedding (when computed).
    caption_key_added
        ``obs`` column of the captions.
    seed
        Random seed of the PCA solver.
    overwrite
        {overwrite}
    copy
        {copy}

    Returns
    -------
    {returns_copy}

    ``adata.obsm[key_added]``
        float32 initial embedding, cells x ``n_components`` (or x genes) — not written with ``use_rep``.
    ``adata.varm['mmc_pca_loadings']``
        PCA loadings, genes x components (``method="pca"``).
    ``adata.obs[caption_key_added]``
        Caption per cell.
    ``adata.uns['mmcontext']['prepare']``
        Method, parameters, the obsm key to train on (``init_key``), PCA mean and gene list; with ``reference``
        also ``reference=True``, ``fill`` and ``n_missing_genes``; with ``orthologs`` the table, ``n_orthologs_mapped``
        (of which ``n_orthologs_by_symbol`` by the symbol fallback) and ``n_genes``. ``source`` names the matrix
        read (``"adata.X"``, ``"adata.raw.X"``, a layer), ``used_raw`` and ``normalize`` say whether ``raw`` stood
        in for a scaled ``X`` and whether counts were log-normalised.

    Examples
    --------
    >>> adata = sc.datasets.pbmc68k_reduced()  # doctest: +SKIP
    >>> mmc.pp.prepare(adata, caption_keys={"cell_type": "bulk_labels"})  # doctest: +SKIP

    """
    check_adata(adata)
    check_writable(adata, copy=copy)
    # Validate everything before writing anything.
    if method not in ("pca", "genes"):
        raise ValueError(f"method={method!r} is not one of 'pca', 'genes'; or pass use_rep='<obsm key>'.")
    keys = None
    if caption_keys is not False:
        keys = resolve_caption_keys(adata, caption_keys, template=caption_template)
    check_outputs(adata, "prepare", [(key_added, "obsm")] if use_rep is None else [], overwrite=overwrite)
    check_outputs(adata, "captions", [(caption_key_added, "obs")] if keys is not None else [], overwrite=overwrite)
    params: dict = {"method": "obsm" if use_rep else method, "seed": seed}
    loadings = None
    if reference is not None:
        from ._reference import project, reference_layer, resolve_space

        if use_rep is not None:
            raise ValueError("Pass either reference= (rebuild the reference's input space) or use_rep=, not both.")
        space = resolve_space(reference)
        X, src = _expression(adata, reference_layer(space, layer), normalize=normalize)
        if space.loadings is None:
            warn_if_scaled(X, what=src.what)
        var_names = src.var_names
        if orthologs is not None:
            from ._orthologs import ortholog_map, translate_var_names

            table = ortholog_map(orthologs, reference_genes=space.genes, var_names=var_names)
            var_names, n_mapped = translate_var_names(var_names, table, space.genes)
            params.update(
                orthologs=table.name,
                n_orthologs_mapped=n_mapped,
                n_orthologs_by_symbol=table.n_by_symbol,
                n_genes=len(space.genes),
            )
            logger.info(
                "orthologs (%s): %d of %d reference genes mapped to genes of this data (%d by symbol up to case)",
                table.name,
                n_mapped,
                len(space.genes),
                table.n_by_symbol,
            )
        init, n_missing = project(X, var_names, space, fill=fill)
        params.update(
            method=space.method,
            init_key=key_added,
            layer=layer,
            **src.record(),
            genes=space.genes.tolist(),
            n_missing_genes=n_missing,
            reference=True,
            fill=fill,
        )
        if space.loadings is not None:
            params.update(n_components=int(space.loadings.shape[1]), mean=space.mean)
            loadings = None
    elif orthologs is not None:
        raise ValueError("orthologs= maps a reference model's genes to this data's; pass `reference=` too.")
    elif use_rep is not None:
        get_obsm(adata, use_rep, hint=" Pass an existing key as `use_rep=` or leave it out to compute PCA.")
        init = None
        params["init_key"] = use_rep
    elif method == "pca":
        X, src = _expression(adata, layer, normalize=normalize)
        if src.used_raw and not src.var_names.equals(adata.var_names):
            raise ValueError(
                f"method='pca' keeps its loadings in adata.varm, but adata.raw holds {len(src.var_names)} genes and "
                f"adata.X {adata.n_vars}; pass a log-normalised `layer=` over adata.var_names, or method='genes'."
            )
        init, loadings, mean = _pca(X, n_components, seed)
        params.update(
            init_key=key_added,
            n_components=int(init.shape[1]),
            layer=layer,
            **src.record(),
            mean=mean,
            genes=list(map(str, src.var_names)),
        )
    else:
        X, src = _expression(adata, layer, normalize=normalize)
        warn_if_scaled(X, what=src.what)
        panel = default_panel(adata, X, var_names=src.var_names) if genes is None else check_texts(genes, what="genes")
        check_unique_names(src.var_names, what="adata.var_names", why="genes are matched by name")
        found = src.var_names.get_indexer(panel)
        n_missing = int((found < 0).sum())
        where = "adata.raw.var_names" if src.used_raw else "adata.var_names"
        if n_missing == len(panel):
            raise ValueError(f"None of the {len(panel)} panel genes are in {where} (e.g. {panel[:3]!r}).")
        if n_missing:
            logger.warning("%d of %d panel genes are not in %s; they are filled with 0.", n_missing, len(panel), where)
        cols = X[:, found[found >= 0]]
        cols = cols.toarray() if sparse.issparse(cols) else np.asarray(cols)
        init = np.zeros((adata.n_obs, len(panel)), dtype=np.float32)
        init[:, found >= 0] = cols
        params.update(init_key=key_added, layer=layer, **src.record(), genes=panel, n_missing_genes=n_missing)
    if init is not None:
        as_float_matrix(init, what="The initial embedding")
    captions_out = None
    if keys is not None:
        captions_out = caption_texts(adata.obs, keys, template=caption_template, ontology=ontology)
        if captions_out.isna().all():
            raise ValueError(f"Every caption is empty: the columns {list(keys.values())!r} hold no values.")

    adata = adata.copy() if copy else adata
    added = []
    if init is not None:
        adata.obsm[key_added] = init
        added.append((key_added, "obsm"))
    if loadings is not None:
        adata.varm[_keys.PCA_LOADINGS] = loadings.T
        added.append((_keys.PCA_LOADINGS, "varm"))
    if captions_out is not None:
        adata.obs[caption_key_added] = captions_out.values
        params["caption_keys"] = keys
        params["caption_template"] = caption_template
        params["caption_key"] = caption_key_added
        added.append((caption_key_added, "obs"))
    if reference is not None:
        from ._reference import log_missing

        log_missing(params["n_missing_genes"], len(params["genes"]))
    record(adata, "prepare", params, outputs=("prepare", [a for a in added if a[1] != "obs"]))
    mark_outputs(adata, "captions", [a for a in added if a[1] == "obs"])
    log_added(*added)
    return adata if copy else None


def default_panel(adata: AnnData, X, *, var_names: Any = None, max_genes: int = 4096, n_top: int = 2048) -> list[str]:
    """All genes of a small panel; else the highly variable genes, else the ``n_top`` most variable.

    ``var_names`` names the columns of ``X`` when it is not ``adata.X`` (``adata.raw.X``): the genes of
    ``adata.X`` (the selection the user made before scaling) are then the panel when they are few enough.
    """
    names = adata.var_names if var_names is None else var_names
    if var_names is not None and not adata.var_names.equals(var_names):
        if adata.n_vars <= max_genes and adata.var_names.isin(names).all():
            return list(map(str, adata.var_names))
        if "highly_variable" in adata.var and adata.var["highly_variable"].any():
            hvg = adata.var_names[adata.var["highly_variable"].to_numpy(bool)]
            return [str(g) for g in hvg if g in set(names)]
    elif adata.n_vars <= max_genes:
        return list(map(str, adata.var_names))
    elif "highly_variable" in adata.var and adata.var["highly_variable"].any():
        return list(map(str, adata.var_names[adata.var["highly_variable"].to_numpy(bool)]))
    if len(names) <= max_genes:
        return list(map(str, names))
    if sparse.issparse(X):
        mean = np.asarray(X.mean(axis=0)).ravel()
        var = np.asarray(X.multiply(X).mean(axis=0)).ravel() - mean**2
    else:
        var = np.asarray(X).var(axis=0)
    top = np.sort(np.argsort(-var, kind="stable")[:n_top])
    return list(map(str, names[top]))


def init_key(adata: AnnData, use_rep: str | None) -> str:
    """The ``obsm`` key holding the initial embedding: ``use_rep``, else what :func:`prepare` recorded."""
    if use_rep is not None:
        return use_rep
    prep = find_record(adata, "prepare")
    key = prep.get("init_key", _keys.X_INIT)
    if key not in adata.obsm:
        raise MMContextKeyError(
            f"adata.obsm[{key!r}] not found; run `mmc.pp.prepare(adata)` first or pass `use_rep=` "
            f"(available: {list(adata.obsm.keys())!r})."
        )
    return key
