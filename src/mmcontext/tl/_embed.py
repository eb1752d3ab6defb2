"""Joint embedding of cells, written to ``obsm``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .. import _keys, _model_attrs
from .._compat import is_read_only_backed
from .._docs import doc_params
from .._logging import logger
from .._provenance import find_record, record, text_fingerprint
from .._settings import settings
from .._validation import (
    MMContextKeyError,
    check_adata,
    check_key_added,
    check_model,
    check_outputs,
    check_writable,
    get_layer,
    get_obsm,
)
from ..data._topk import is_dask
from ..pp._prepare import init_key
from ..pp._reference import log_missing, match_genes, project_chunks, reference_layer, space_from_model
from ..pp._source import expression_source
from ._distributed import computed_blocks, lazy_embedding

if TYPE_CHECKING:
    from anndata import AnnData

    from ..models import MMContextEncoder


#: Cells read from the expression matrix at a time by :func:`embed` with ``use_rep="X"``.
DEFAULT_CHUNK_SIZE = 10_000


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


def _check_chunk_size(chunk_size: Any) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer (cells read at a time), got {chunk_size!r}.")
    return int(chunk_size)


def _check_input_dim(X: Any, source: str, model: MMContextEncoder) -> None:
    if X.shape[1] != model.input_dim:
        space = model.omics_encoder.input_space
        raise ValueError(
            f"adata.obsm[{source!r}] has {X.shape[1]} features but the model's omics tower expects "
            f"{model.input_dim}{f' (trained on {space})' if space else ''}. Prepare the data in the model's input "
            "space, e.g. `mmc.pp.prepare(adata, reference=model)`, or pass the matching `use_rep=`."
        )


def _source(adata: AnnData, model: MMContextEncoder, use_rep: str | None, layer: str | None) -> str:
    """``"X"`` (rebuild the model's input space from expression) or the ``obsm`` key of the initial embedding."""
    if use_rep == "X":
        return "X"
    if use_rep is not None:
        if layer is not None:
            raise ValueError(
                f"layer={layer!r} is read only with use_rep='X' (or use_rep=None); "
                f"use_rep={use_rep!r} is an obsm key used as is. Leave out one of them."
            )
        return use_rep
    if layer is None:
        own = model_obsm_key(model)
        if own is not None and own in adata.obsm:
            return own  # the obsm key the model was trained on (e.g. 'X_pca'), found in this AnnData
        key = find_record(adata, "prepare").get("init_key", _keys.X_INIT)
        if key in adata.obsm or space_from_model(model) is None:
            if key not in adata.obsm and own not in (None, key):
                raise MMContextKeyError(
                    f"adata.obsm[{own!r}] not found: the model was trained on adata.obsm[{own!r}] and looks for it "
                    f"(available: {list(adata.obsm.keys())!r}). Compute it as for the training data, "
                    "or pass the matching `use_rep=`."
                )
            return init_key(adata, None)  # the prepared initial embedding, or the error saying how to make one
    return "X"


def model_obsm_key(model: MMContextEncoder) -> str | None:
    """The ``obsm`` key of the initial embedding ``model`` was trained on (``None``: not recorded)."""
    key = (getattr(model.omics_encoder, "input_space", None) or {}).get("obsm_key")
    return str(key) if key else None


def _source_text(params: dict[str, Any]) -> str:
    if params["use_rep"] != "X":
        return f"adata.obsm[{params['use_rep']!r}]"
    return f"{params['source']} projected into the model's {params['input_space']} space"


def _plan(
    adata: AnnData,
    model: MMContextEncoder,
    use_rep: str | None,
    *,
    layer: str | None,
    fill: str,
    chunk_size: int,
    batch_size: int | None,
    normalize: bool = False,
) -> tuple[Iterator[tuple[int, np.ndarray]], dict[str, Any], Any]:
    """Validate what can be checked up front; return the chunks, the params and the lazy dask result (or None).

    The chunks are a lazy iterator of ``(start, embedding rows)``; for a dask input the third item is the lazy
    dask array of the embedding, and the iterator computes its blocks.

    Nothing beyond what the checks need is read until the iterator runs.
    """
    batch_size = batch_size or settings.batch_size
    chunk_size = _check_chunk_size(chunk_size)
    source = _source(adata, model, use_rep, layer)
    if source != "X" and is_dask(adata.obsm.get(source) if source in adata.obsm else None):
        X = adata.obsm[source]
        what = f"adata.obsm[{source!r}]"
        _check_input_dim(X, source, model)
        lazy = lazy_embedding(X, model, batch_size=batch_size, what=what)
        return computed_blocks(lazy), {"use_rep": source, "dask": True}, lazy
    if source != "X":
        X = get_obsm(adata, source, hint=" Run `mmc.pp.prepare(adata)` or pass `use_rep=`.")
        _check_input_dim(X, source, model)

        def whole() -> Iterator[tuple[int, np.ndarray]]:
            yield 0, model.encode_cells(X, batch_size=batch_size)

        return whole(), {"use_rep": source}, None

    space = space_from_model(model)
    if space is None:
        raise ValueError(
            "use_rep='X' rebuilds the model's input space from expression, but this model carries no gene panel or "
            "PCA loadings (it was trained on an obsm key given as use_rep=, or built by hand). Pass that obsm key as "
            "`use_rep=`, or set the space with `model.omics_encoder.set_input_arrays(genes=..., loadings=...)`."
        )
    if space.n_features != model.input_dim:
        raise ValueError(
            f"The model's input space has {space.n_features} features but its omics tower reads "
            f"{model.input_dim}; the saved model is inconsistent."
        )
    expr_layer = reference_layer(space, layer)
    if get_layer(adata, expr_layer)[0] is None:
        raise ValueError(f"{get_layer(adata, expr_layer)[1]} is empty; pass `layer=` or an obsm key as `use_rep=`.")
    src = expression_source(adata, expr_layer, normalize=normalize)
    X, what = src.X, src.what
    pos = match_genes(src.var_names, space, fill=fill)
    if getattr(X, "format", None) == "csc":
        logger.warning("%s is CSC: every chunk of rows reads all of it. Store it as CSR (`X.tocsr()`) to stream.", what)
    n_missing = int((pos < 0).sum())
    if is_dask(X):
        from .._validation import check_log_normalised

        check_log_normalised(X[:2000].compute(), what=what)
        lazy = lazy_embedding(
            X, model, batch_size=batch_size, what=what, space=space, var_names=src.var_names, fill=fill
        )
        params = {"use_rep": "X", "layer": expr_layer, "source": what, "input_space": space.method, "fill": fill}
        params.update(n_missing_genes=n_missing, n_genes=len(space.genes), dask=True)
        return computed_blocks(lazy), params, lazy
    params = {
        "use_rep": "X",
        "layer": expr_layer,
        **src.record(),
        "input_space": space.method,
        "fill": fill,
        "chunk_size": chunk_size,
        "n_missing_genes": n_missing,
        "n_genes": len(space.genes),
    }

    def chunks() -> Iterator[tuple[int, np.ndarray]]:
        for start, init in project_chunks(
            X, src.var_names, space, fill=fill, chunk_size=chunk_size, what=what, normalize=src.normalize
        ):
            yield start, model.encode_cells(init, batch_size=batch_size, show_progress_bar=False)

    return chunks(), params, None


def _progress(chunks: Iterator[tuple[int, np.ndarray]], n_obs: int, params: dict) -> Iterator[tuple[int, np.ndarray]]:
    from tqdm.auto import tqdm

    if "chunk_size" not in params:
        return chunks
    total = -(-n_obs // params["chunk_size"])
    return tqdm(chunks, total=total, desc="Embedding cells", unit="chunk", disable=not settings.progress or total < 2)


def _collect(chunks: Iterator[tuple[int, np.ndarray]], n_obs: int, dim: int) -> np.ndarray:
    out = np.empty((n_obs, dim), dtype=np.float32)
    done = 0
    for start, emb in chunks:
        out[start : start + len(emb)] = emb
        done += len(emb)
    if done != n_obs:  # pragma: no cover - a broken reader
        raise RuntimeError(f"Embedded {done} of {n_obs} cells.")
    return out


def _write_npy(path: Path, chunks: Iterator[tuple[int, np.ndarray]], n_obs: int, dim: int) -> None:
    """Stream the rows into a ``.npy`` file: a temporary sibling, moved into place only when every row is in."""
    from .._io import atomic_file

    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False, "shape": (n_obs, dim)}
    with atomic_file(path) as tmp:
        done = 0
        with open(tmp, "wb") as fh:
            np.lib.format.write_array_header_1_0(fh, header)
            for start, emb in chunks:
                if start != done:  # pragma: no cover - chunks come in order
                    raise RuntimeError(f"Chunk at row {start} out of order (expected {done}).")
                fh.write(np.ascontiguousarray(emb, dtype="<f4").tobytes())
                done += len(emb)
        if done != n_obs:  # pragma: no cover - a broken reader
            raise RuntimeError(f"Embedded {done} of {n_obs} cells.")


def _check_out(out: Any) -> Path:
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a path to a .npy file, got {type(out).__name__}.")
    path = Path(out)
    if path.suffix != ".npy":
        raise ValueError(f"out={str(out)!r} must end in '.npy' (the embedding is written as a numpy array file).")
    if path.is_dir():
        raise ValueError(f"out={str(out)!r} is a folder; pass a file name ending in '.npy'.")
    return path


def cell_embeddings(
    adata: AnnData,
    model: MMContextEncoder,
    use_rep: str | None,
    batch_size: int | None,
    *,
    layer: str | None = None,
    fill: Literal["mean", "zero"] = "mean",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    normalize: bool = False,
) -> np.ndarray:
    """Embed the cells of ``adata`` (see :func:`embed` for ``use_rep``), checking the input against the model."""
    chunks, params, _ = _plan(
        adata, model, use_rep, layer=layer, fill=fill, chunk_size=chunk_size, batch_size=batch_size, normalize=normalize
    )
    emb = _collect(_progress(chunks, adata.n_obs, params), adata.n_obs, model.omics_encoder.output_dim)
    if params["use_rep"] == "X":
        log_missing(params["n_missing_genes"], params["n_genes"])
    logger.info("embedded %d cells from %s", adata.n_obs, _source_text(params))
    return emb


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
