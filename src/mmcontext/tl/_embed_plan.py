"""Where :func:`mmcontext.tl.embed` reads the cells from, and the chunked pass that embeds them.

The source is an ``obsm`` key used as is, or ``"X"``: the expression, projected into the model's gene panel or PCA
space by gene name ``chunk_size`` cells at a time. :func:`_plan` checks what can be checked up front and returns
a lazy iterator of ``(start, embedding rows)``, which :func:`_collect` gathers in memory and :func:`_write_npy`
streams into a ``.npy`` file; a dask input stays a lazy dask array.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .. import _keys
from .._logging import logger
from .._provenance import find_record
from .._settings import settings
from .._validation import MMContextKeyError, get_layer, get_obsm
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
    out = None
    done = 0
    for start, emb in chunks:
        if out is None and start == 0 and emb.shape == (n_obs, dim) and emb.dtype == np.float32:
            return emb  # one chunk of every cell (the obsm input): it is the result, not copied
        if out is None:
            out = np.empty((n_obs, dim), dtype=np.float32)
        out[start : start + len(emb)] = emb
        done += len(emb)
    if done != n_obs or out is None:  # pragma: no cover - a broken reader
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
