"""Joint embedding of cells, written to ``obsm`` or a file: :func:`embed`; reading it back (``joint_embedding``).

Where the cells are read from and the chunked pass over them live in ``_embed_plan``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .. import _keys, _model_attrs
from .._compat import is_read_only_backed
from .._docs import doc_params
from .._logging import logger
from .._provenance import find_record, record, text_fingerprint
from .._validation import (
    check_adata,
    check_key_added,
    check_model,
    check_outputs,
    check_writable,
    get_obsm,
)
from ..pp._reference import log_missing
from ._embed_plan import (
    DEFAULT_CHUNK_SIZE,
    _collect,
    _plan,
    _progress,
    _source_text,
    _write_npy,
    cell_embeddings,
)

if TYPE_CHECKING:
    from anndata import AnnData

    from ..models import MMContextEncoder


def model_provenance(model: MMContextEncoder) -> dict:
    """What identifies ``model`` in ``uns['mmcontext']``: name or path, fingerprint, dimensions."""
    from ..models import model_fingerprint

    return {
        "model": _model_attrs.source(model),
        "model_fingerprint": model_fingerprint(model),
        "text_fingerprint": text_fingerprint(model),
        "text_model": str(model.model_card_data.base_model),
        "input_dim": model.input_dim,
        "embedding_dim": model.omics_encoder.output_dim,
    }


def _check_out(out: Any) -> Path:
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a path to a .npy file, got {type(out).__name__}.")
    path = Path(out)
    if path.suffix != ".npy":
        raise ValueError(f"out={str(out)!r} must end in '.npy' (the embedding is written as a numpy array file).")
    if path.is_dir():
        raise ValueError(f"out={str(out)!r} is a folder; pass a file name ending in '.npy'.")
    return path


@doc_params("model", "overwrite", "returns_copy")
def embed(
    adata: AnnData,
    model: MMContextEncoder,
    *,
    use_rep: str | None = None,
    layer: str | None = None,
    normalize: bool = False,
    fill: Literal["mean", "zero"] = "mean",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    out: str | os.PathLike | None = None,
    key_added: str = _keys.X_MMC,
    batch_size: int | None = None,
    overwrite: bool = False,
    copy: bool = False,
) -> AnnData | None:
    """Embed cells into the joint cell-text space, from an initial embedding or streamed from expression.

    Each cell's embedding depends only on its own initial embedding (not on the batch or the
    other cells), so embedding a subset, or in chunks of any size, gives the same rows.

    Atlases that do not fit in memory: open the file backed (``anndata.read_h5ad(path, backed="r")``) and pass
    ``out="embedding.npy"``. The expression is then read ``chunk_size`` cells at a time, each chunk is projected
    into the model's gene panel or PCA space by gene name (as :func:`mmcontext.pp.prepare` with ``reference=model``
    does) and embedded, and the rows are written to the file as they come; neither the dense expression nor the
    embedding is held in memory whole.

    Parameters
    ----------
    adata
        Annotated data matrix: prepared (see :func:`mmcontext.pp.prepare`), or with expression by gene name for a
        model that carries its input space (every model trained on ``method="genes"`` or ``"pca"``). May be backed.
    model
        {model}
    use_rep
        Where the model's input comes from. An ``obsm`` key: that initial embedding as is. ``"X"``: rebuilt from
        the expression (``adata.X`` or ``layer``) in the model's input space, streamed in chunks. ``None``
        (default, no ``layer``): the ``obsm`` key the model was trained on (e.g. ``'X_pca'``, kept in its
        ``input_space``) when ``adata.obsm`` holds it, else the initial embedding :func:`~mmcontext.pp.prepare`
        recorded, else ``"X"``. The log line names the key used.
    layer
        With ``use_rep="X"``: expression layer to read instead of ``adata.X`` (default: the layer the model's
        training data was prepared from, else ``adata.X``). Log-normalised like the training data. Without it, a
        scaled ``adata.X`` (negative values, centred genes) with log-normalised ``adata.raw`` reads ``adata.raw``.
    normalize
        With ``use_rep="X"``: the expression holds raw counts; each chunk is log-normalised (``normalize_total`` to
        1e4, ``log1p``) before it is projected.
    fill
        With ``use_rep="X"``: value for model genes missing from ``adata.var_names``, as in
        :func:`mmcontext.pp.prepare` — ``"mean"`` (the training mean of that feature) or ``"zero"``.
    chunk_size
        With ``use_rep="X"``: cells read from the expression matrix at a time. Memory grows with
        ``chunk_size`` x the model's input dimension; results do not depend on it.
    out
        Path of a ``.npy`` file to write the embedding to instead of ``adata.obsm`` — the way to embed a read-only
        backed AnnData. ``adata`` is left unchanged. The file appears only when every row is written
        (a temporary sibling is removed on error).
    key_added
        ``obsm`` key to write (without ``out``).
    batch_size
        Cells per forward pass (default :attr:`mmcontext.settings.batch_size`).
    overwrite
        {overwrite}
    copy
        Return a copy instead of writing into ``adata`` (not for backed AnnData).

    Returns
    -------
    {returns_copy}

    ``adata.obsm[key_added]``
        float32 array, cells x embedding dimension, rows of unit length.
    ``adata.obs['mmc_split']``
        with a model trained in this session on cells all in ``adata`` (e.g. on ``adata[train].copy()``):
        categorical ``"train"`` / ``"validation"`` / ``"unseen"``, which cells trained the model; the model's
        training record is copied to ``adata.uns['mmcontext']['train']`` with this AnnData's counts.
    ``adata.uns['mmcontext']['embed']``
        Model name/path and fingerprint, dimensions, ``use_rep`` (the obsm key, or ``"X"``); with ``"X"`` also
        ``layer``, ``source`` (the matrix read), ``used_raw``, ``normalize``, ``input_space`` (``"genes"`` or
        ``"pca"``), ``fill``, ``chunk_size``, ``n_missing_genes``.

    With ``out``: ``None``; ``adata`` is unchanged and the file ``out`` holds the float32 array (cells x embedding
    dimension, unit rows, in the order of ``adata.obs_names``) — read it with ``np.load(out, mmap_mode="r")``.
    A backed AnnData opened with ``backed="r+"`` gets ``obsm[key_added]`` in memory; ``adata.write()`` saves it.

    Examples
    --------
    >>> mmc.tl.embed(adata, model)  # doctest: +SKIP
    >>> sc.pp.neighbors(adata, use_rep="X_mmc")  # doctest: +SKIP

    A 2-million-cell atlas, never loaded into memory:

    >>> atlas = anndata.read_h5ad("atlas.h5ad", backed="r")  # doctest: +SKIP
    >>> mmc.tl.embed(atlas, model, out="atlas_mmc.npy", chunk_size=20_000)  # doctest: +SKIP
    >>> emb = np.load("atlas_mmc.npy", mmap_mode="r")  # doctest: +SKIP

    """
    check_adata(adata)
    check_model(model)
    check_key_added(key_added)
    if out is not None:
        out = _check_out(out)
        if copy:
            raise ValueError("Pass either out= (the embedding goes to a file, adata is unchanged) or copy=True.")
    elif adata.isbacked and copy:
        raise ValueError(
            "copy=True would load the backed AnnData into memory. Pass `out='embedding.npy'` to stream the embedding "
            "to a file, open the file with `backed='r+'` to add obsm, or call `adata.to_memory()` first."
        )
    elif not adata.is_view and is_read_only_backed(adata):
        raise ValueError(
            f"The AnnData is backed read-only ({adata.filename}); adata.obsm cannot be written. Pass "
            "`out='embedding.npy'` to stream the embedding to a file, or open it with `backed='r+'` "
            "(then `adata.write()` saves obsm[key_added])."
        )
    else:
        check_writable(adata, copy=copy)
    if out is None:
        check_outputs(adata, "embed", [(key_added, "obsm")], overwrite=overwrite)
    chunks, params, lazy = _plan(
        adata, model, use_rep, layer=layer, fill=fill, chunk_size=chunk_size, batch_size=batch_size, normalize=normalize
    )
    n_obs, dim = adata.n_obs, model.omics_encoder.output_dim
    chunks = _progress(chunks, n_obs, params)
    from_x = params["use_rep"] == "X"
    if out is not None:
        _write_npy(out, chunks, n_obs, dim)
        if from_x:
            log_missing(params["n_missing_genes"], params["n_genes"])
        logger.info("wrote %s (%d cells x %d, float32)", out, n_obs, dim)
        return None
    emb = lazy if lazy is not None else _collect(chunks, n_obs, dim)  # a dask input stays lazy in obsm
    adata = adata.copy() if copy else adata
    adata.obsm[key_added] = emb
    record(
        adata,
        "embed",
        {**model_provenance(model), **params, "key_added": key_added},
        key=key_added,
        outputs=("embed", [(key_added, "obsm")]),
    )
    from ._split import mark_split

    split = f", '{_keys.SPLIT}' (adata.obs)" if mark_split(adata, model) else ""
    if from_x:
        log_missing(params["n_missing_genes"], params["n_genes"])
    logger.info("added '%s' (adata.obsm)%s, embedded from %s", key_added, split, _source_text(params))
    return adata if copy else None


def joint_embedding(adata: AnnData, model: MMContextEncoder, use_rep: str | None = None) -> np.ndarray:
    """Return the joint embedding of ``adata``'s cells: ``obsm['X_mmc']`` when this model wrote it, else computed."""
    from ..models import model_fingerprint

    prov = find_record(adata, "embed")
    key = prov.get("key_added", _keys.X_MMC)
    if use_rep is None and key in adata.obsm and prov.get("model_fingerprint") == model_fingerprint(model):
        return get_obsm(adata, key, hint=f" Recompute it: `mmc.tl.embed(adata, model, key_added={key!r})`.")
    return cell_embeddings(adata, model, use_rep, None)
