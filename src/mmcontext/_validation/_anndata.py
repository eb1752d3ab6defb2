"""Checks of an AnnData and what is read from or written into it.

``obs`` / ``obsm`` / layer look-ups, writability, output names, a content digest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

from .._compat import is_read_only_backed
from .._errors import MMContextKeyError
from ._args import _closest, check_unique_names
from ._values import as_float_matrix

if TYPE_CHECKING:
    from anndata import AnnData


def check_adata(adata: Any, *, min_obs: int = 1) -> None:
    """Check that ``adata`` is a usable AnnData: the right type, enough cells, unique ``obs_names``."""
    from anndata import AnnData

    if not isinstance(adata, AnnData):
        raise TypeError(f"Expected an AnnData object, got {type(adata).__name__}.")
    if adata.n_obs < min_obs:
        raise ValueError(f"The AnnData has {adata.n_obs} cells (shape {adata.shape}); at least {min_obs} needed.")
    check_unique_names(adata.obs_names, what="adata.obs_names", why="cells are referenced by name")


def check_text_column(values: pd.Series, *, key: str) -> None:
    """Raise if ``obs[key]``, used as text (captions, labels), holds continuous numbers, which make no text.

    A float column with non-integral values ("A 0.0238 cell.") is refused, naming the column and the fix.
    """
    if values.dtype.kind != "f":
        return
    finite = values.to_numpy()[np.isfinite(values.to_numpy())]
    if finite.size and not np.array_equal(finite, np.round(finite)):
        raise ValueError(
            f"adata.obs[{key!r}] is a continuous (float) column ({values.nunique()} distinct values, e.g. "
            f"{finite[0]:g}); it cannot be used as text. Pass a categorical column (cell type, tissue, ...), or bin "
            f"it first, e.g. `adata.obs[{key!r}] = pd.cut(adata.obs[{key!r}], 5).astype(str)`."
        )


def check_writable(adata: AnnData, *, copy: bool, offer_copy: bool = True) -> None:
    """Refuse to write into a view (it would silently copy) or a read-only backed AnnData."""
    if copy:
        return
    alt = " or `copy=True`" if offer_copy else ""
    if adata.is_view:
        raise ValueError(
            "The AnnData is a view (e.g. `adata[mask]`); results cannot be written into it. "
            f"Pass `adata[mask].copy()`{alt}."
        )
    if is_read_only_backed(adata):
        raise ValueError(f"The AnnData is backed read-only; open it with `backed='r+'`{alt}.")


class MMContextOverwriteError(ValueError):
    """A function would replace an ``obs`` column / ``obsm`` key that mmcontext did not write (or of another kind).

    Pass ``overwrite=True`` to replace it, or another ``key_added=``.
    """


def check_outputs(adata: AnnData, kind: str, items: Iterable[tuple[str, str]], *, overwrite: bool = False) -> None:
    """Refuse to replace an existing ``adata.<where>[key]`` that mmcontext did not write as ``kind``.

    ``items`` are ``(key, where)`` pairs (``where`` one of ``"obs"``, ``"obsm"``, ``"varm"``), as in ``log_added``.
    A key mmcontext wrote is known from ``uns['mmcontext']['outputs']`` (see :func:`mmcontext._provenance.record`);
    results saved before it was kept are known from their step's ``key_added`` record. Raises
    :class:`MMContextOverwriteError` before anything is computed or written, naming the key and the option.
    """
    from .._provenance import written_kind

    if not isinstance(overwrite, (bool, np.bool_)):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}.")
    if overwrite:
        return
    for key, where in items:
        store = adata.obs if where == "obs" else getattr(adata, where)
        if key not in (store.columns if where == "obs" else store):
            continue
        by = written_kind(adata, key, where)
        if by == kind or (by is None and _recorded_key(adata, key)):
            continue
        value = store[key]
        desc = f"{value.dtype} column" if where == "obs" else f"{type(value).__name__} of shape {np.shape(value)}"
        origin = f"written by mmcontext's {by!r}" if by else "not written by mmcontext"
        raise MMContextOverwriteError(
            f"adata.{where}[{key!r}] already exists ({desc}, {origin}); {kind!r} would replace it. "
            "Pass `overwrite=True` to replace it, or another `key_added=`."
        )


def _recorded_key(adata: AnnData, key: str) -> bool:
    """Whether a step record from before ``outputs`` were noted names ``key`` (its ``key_added`` or a suffix of it)."""
    from .._keys import UNS

    for step in adata.uns.get(UNS, {}).values():
        if not isinstance(step, dict):
            continue
        names = [step.get(k) for k in ("key_added", "init_key", "caption_key")]
        names += list(step.get("keys", [])) if not isinstance(step.get("keys"), (str, dict)) else []
        for name in names:
            if isinstance(name, str) and (key == name or key.startswith(f"{name}_")):
                return True
    return False


def get_obsm(adata: AnnData, key: str, *, hint: str = "") -> np.ndarray:
    """Return ``adata.obsm[key]`` as checked float32, or raise naming the closest existing keys."""
    if key not in adata.obsm:
        raise MMContextKeyError(f"adata.obsm[{key!r}] not found.{_closest(key, adata.obsm.keys())}{hint}")
    return as_float_matrix(adata.obsm[key], what=f"adata.obsm[{key!r}]")


def get_obs_column(adata: AnnData, key: str) -> pd.Series:
    """Return ``adata.obs[key]``, or raise naming the closest existing columns."""
    if key not in adata.obs.columns:
        raise MMContextKeyError(f"adata.obs[{key!r}] not found.{_closest(key, adata.obs.columns)}")
    return adata.obs[key]


def get_layer(adata: AnnData, layer: str | None) -> tuple[Any, str]:
    """Return ``(matrix, description)`` for ``adata.X`` (``layer=None``) or ``adata.layers[layer]``."""
    if layer is None:
        return adata.X, "adata.X"
    if layer not in adata.layers:
        raise MMContextKeyError(
            f"adata.layers[{layer!r}] not found.{_closest(layer, adata.layers.keys())} "
            "Pass an existing `layer=` or leave it out to use adata.X."
        )
    return adata.layers[layer], f"adata.layers[{layer!r}]"


def adata_digest(adata: AnnData) -> str:
    """A content hash of everything in an AnnData (matrices, names, annotations, ``uns``).

    Two AnnData objects with the same digest hold the same data; used to show that a function that
    raised left its input exactly as it was.
    """
    import hashlib
    import pickle

    h = hashlib.sha256()

    def add(obj: Any) -> None:
        if obj is None:
            h.update(b"<None>")
        elif sparse.issparse(obj):
            obj = sparse.csr_matrix(obj)
            for part in (obj.data, obj.indices, obj.indptr, np.asarray(obj.shape)):
                add(part)
        elif isinstance(obj, np.ndarray):
            h.update(str((obj.dtype, obj.shape)).encode())
            h.update(np.ascontiguousarray(obj).tobytes() if obj.dtype.kind != "O" else pickle.dumps(obj.tolist()))
        elif isinstance(obj, pd.DataFrame):
            h.update(repr(list(map(str, obj.columns))).encode() + repr(list(map(str, obj.dtypes))).encode())
            add(obj.index.to_numpy().astype(str))
            for col in obj.columns:
                values = obj[col]
                if isinstance(values.dtype, pd.CategoricalDtype):
                    add(values.cat.categories.to_numpy().astype(str))
                    add(values.cat.codes.to_numpy())
                else:
                    add(values.astype(object).to_numpy())
        elif isinstance(obj, dict) or (hasattr(obj, "keys") and hasattr(obj, "__getitem__")):
            for key in sorted(obj.keys(), key=str):
                h.update(f"<{key}>".encode())
                add(obj[key])
        elif isinstance(obj, (list, tuple)):
            h.update(b"[")
            for item in obj:
                add(item)
            h.update(b"]")
        else:
            h.update(repr(obj).encode())

    X = adata.X
    add(X if X is None or sparse.issparse(X) else np.asarray(X))
    for part in ("obs", "var"):
        add(getattr(adata, part))
    for part in ("obsm", "varm", "layers", "obsp", "varp", "uns"):
        add(dict(getattr(adata, part)))
    h.update(f"view={adata.is_view}".encode())
    return h.hexdigest()


# documented and raised as mmcontext._validation.MMContextOverwriteError (docs/errors.md)
MMContextOverwriteError.__module__ = "mmcontext._validation"
