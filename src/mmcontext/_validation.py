"""Input checks shared by every public function.

Each check raises before anything is written, with a message naming the key, column or shape
that is wrong and how to fix it.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

from ._errors import MMContextKeyError  # also importable from here, where the docs name it

if TYPE_CHECKING:
    from anndata import AnnData


def _closest(key: str, options: Iterable[str]) -> str:
    options = [str(o) for o in options]
    close = difflib.get_close_matches(key, options, n=3, cutoff=0.5)
    if close:
        return f" Did you mean {', '.join(repr(c) for c in close)}?"
    return f" Available: {options[:20]!r}." if options else " There are none."


def check_adata(adata: Any, *, min_obs: int = 1) -> None:
    """Check that ``adata`` is a usable AnnData: the right type, enough cells, unique ``obs_names``."""
    from anndata import AnnData

    if not isinstance(adata, AnnData):
        raise TypeError(f"Expected an AnnData object, got {type(adata).__name__}.")
    if adata.n_obs < min_obs:
        raise ValueError(f"The AnnData has {adata.n_obs} cells (shape {adata.shape}); at least {min_obs} needed.")
    if not adata.obs_names.is_unique:
        dup = adata.obs_names[adata.obs_names.duplicated()][:3].tolist()
        raise ValueError(
            f"adata.obs_names are not unique (e.g. {dup!r}); cells are referenced by name. "
            "Run `adata.obs_names_make_unique()` first."
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
    if adata.isbacked and getattr(adata.file, "_filemode", "r") == "r":
        raise ValueError(f"The AnnData is backed read-only; open it with `backed='r+'`{alt}.")


def check_expression_values(X: Any, *, what: str, fix: str = "clean the data first", start: int | None = None) -> None:
    """Raise if the expression matrix ``X`` (dense or sparse, in memory) is non-numeric or holds NaN/inf values.

    ``X`` may be a row chunk of a larger matrix starting at row ``start``; the message then names the first bad row.
    """
    data = X.data if sparse.issparse(X) else np.asarray(X)
    if data.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be numeric, got dtype {data.dtype}.")
    if data.size and not np.isfinite(data).all():
        where = ""
        if start is not None and sparse.issparse(X) and X.format == "csr":
            first = int(np.flatnonzero(~np.isfinite(data))[0])
            where = f" (first in row {start + int(np.searchsorted(X.indptr, first, side='right')) - 1})"
        elif start is not None and not sparse.issparse(X):
            where = f" (first in row {start + int(np.flatnonzero(~np.isfinite(data).all(axis=1))[0])})"
        raise ValueError(f"{what} has NaN or infinite values{where}; {fix}.")


def check_finite(X: np.ndarray, *, what: str) -> None:
    """Raise if ``X`` holds NaN or infinite values, naming how many rows are affected."""
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise ValueError(
            f"{what} has NaN or infinite values in {len(rows)} of {X.shape[0]} rows (first rows: {rows[:5].tolist()}). "
            "Remove or impute those cells first."
        )


def as_float_matrix(X: Any, *, what: str) -> np.ndarray:
    """Return ``X`` as a dense 2-D float32 array, checking type, shape and finiteness."""
    if isinstance(X, pd.DataFrame):
        X = X.to_numpy()
    if sparse.issparse(X):
        X = X.toarray()
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be numeric, got dtype {X.dtype}.")
    if X.ndim != 2:
        raise ValueError(f"{what} must be 2-D (cells x features), got shape {X.shape}.")
    if X.shape[1] == 0:
        raise ValueError(f"{what} has 0 features (shape {X.shape}).")
    X = X.astype(np.float32, copy=False)
    check_finite(X, what=what)
    return X


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


def check_texts(texts: Any, *, what: str) -> list[str]:
    """Return ``texts`` as a non-empty list of non-empty strings (a single string becomes a list)."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise ValueError(f"{what} is empty; pass at least one text.")
    for t in texts:
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"{what} must be non-empty strings, got {t!r}.")
    return texts


def check_dim(n_features: int, expected: int, *, what: str, fix: str) -> None:
    """Raise if an input has ``n_features`` columns where the model expects ``expected``."""
    if n_features != expected:
        raise ValueError(f"{what} has {n_features} features but the model expects {expected}. {fix}")


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


def looks_like_counts(X: Any, *, max_rows: int = 2000) -> bool:
    """Whether ``X`` looks like raw counts: non-negative integers with a maximum above 20 (on a row sample)."""
    rows = X[:max_rows]
    data = rows.data if sparse.issparse(rows) else np.asarray(rows)
    data = np.asarray(data)
    if data.size == 0 or data.dtype.kind not in "biuf":
        return False
    if data.dtype.kind == "f":
        finite = data[np.isfinite(data)]
        if finite.size == 0 or not np.array_equal(finite, np.round(finite)):
            return False
        data = finite
    return bool(data.min() >= 0 and data.max() > 20)


def check_log_normalised(X: Any, *, what: str) -> None:
    """Raise if ``X`` holds raw counts where log-normalised values are expected."""
    if looks_like_counts(X):
        raise ValueError(
            f"{what} looks like raw counts (non-negative integers up to {_max(X):g}); this method expects "
            "log-normalised values. Run `sc.pp.normalize_total(adata); sc.pp.log1p(adata)` first, or pass a "
            "log-normalised `layer=`."
        )


def warn_if_scaled(X: Any, *, what: str) -> None:
    """Log a warning when a gene panel is read from a matrix with negative values (scaled, not log-normalised)."""
    from ._logging import logger

    values = X.data if sparse.issparse(X) else np.asarray(X)
    if values.size and float(values.min()) < 0:
        logger.warning(
            "%s has negative values: it looks scaled (sc.pp.scale), but the gene panel expects log-normalised "
            "expression, which also keeps new data projectable by gene name. Pass `layer=` (or put the log-normalised "
            "matrix, e.g. `adata.raw.to_adata().X`, in X); mmc.datasets.pbmc68k_reduced() already does.",
            what,
        )


def check_counts(X: Any, *, what: str) -> None:
    """Raise if ``X`` is not raw counts (negative or non-integer values) where counts are expected."""
    rows = X[:2000]
    data = np.asarray(rows.data if sparse.issparse(rows) else rows)
    if data.size and (data.min() < 0 or not np.array_equal(data, np.round(data))):
        raise ValueError(
            f"{what} holds negative or non-integer values; this method expects raw counts. "
            "Pass the counts with `layer=` (e.g. a 'counts' layer kept before normalisation)."
        )


def _max(X: Any) -> float:
    return float(X.max()) if sparse.issparse(X) else float(np.nanmax(np.asarray(X)))


def check_key_added(key_added: Any, *, what: str = "key_added") -> str:
    """Return ``key_added`` if it is a non-empty string, else raise ``TypeError``/``ValueError``."""
    if not isinstance(key_added, str):
        raise TypeError(f"{what} must be a string, got {type(key_added).__name__}.")
    if not key_added.strip():
        raise ValueError(f"{what} must be a non-empty string.")
    return key_added


def check_model_folder(path: str | os.PathLike) -> None:
    """Check that a saved model folder is complete and readable before loading it.

    Every JSON file must parse, every module folder named in ``modules.json`` must exist, and every
    ``*.safetensors`` file must have a valid header. Raises :class:`FileNotFoundError` for a missing
    file and :class:`ValueError` for a corrupted one, naming the file and how to fix it.
    """
    import json

    root = Path(path)
    fix = "Save the model again (`mmc.models.save_model(model, path)`) or load an intact copy."
    modules_file = root / "modules.json"
    if not modules_file.is_file():
        raise FileNotFoundError(
            f"{str(modules_file)!r} is missing: {str(root)!r} is not a saved mmcontext model or was only partly "
            f"written. {fix}"
        )
    for file in sorted(root.rglob("*.json")):
        try:
            parsed = json.loads(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{str(file)!r} is corrupted (not valid JSON: {err}). {fix}") from None
        if file == modules_file:
            modules = parsed
    if not isinstance(modules, list):
        raise ValueError(f"{str(modules_file)!r} is corrupted (expected a list of modules). {fix}")
    for entry in modules:
        sub = root / str(entry.get("path", "")) if isinstance(entry, dict) else None
        if sub is None or not sub.exists():
            raise FileNotFoundError(f"Module folder {str(sub)!r} listed in modules.json is missing. {fix}")
    router = root / "router_config.json"
    if router.is_file():
        config = json.loads(router.read_text(encoding="utf-8"))
        for name in config.get("structure", {}).values() if isinstance(config.get("structure"), dict) else []:
            for module in name if isinstance(name, list) else [name]:
                if not (root / str(module)).exists():
                    raise FileNotFoundError(
                        f"Module folder {str(root / str(module))!r} named in router_config.json is missing. {fix}"
                    )
    for file in sorted(root.rglob("*.safetensors")):
        _check_safetensors(file, fix)


def _check_safetensors(file: Path, fix: str) -> None:
    """Check a safetensors file's header and that its size matches the tensors it declares."""
    import json
    import struct

    size = file.stat().st_size
    try:
        with open(file, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > size - 8:
                raise ValueError("header longer than the file")
            header = json.loads(fh.read(n))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise ValueError(f"{str(file)!r} is corrupted (unreadable safetensors header: {err}). {fix}") from None
    if 8 + n + end != size:
        raise ValueError(
            f"{str(file)!r} is truncated or corrupted ({size} bytes, its header declares {8 + n + end}). {fix}"
        )


def check_model(model: Any, *, what: str = "model") -> None:
    """Raise ``TypeError`` unless ``model`` is an :class:`~mmcontext.models.MMContextEncoder`.

    Checked by class name along the MRO, so this core module needs no import of the torch layer.
    """
    if not any(c.__name__ == "MMContextEncoder" and c.__module__.startswith("mmcontext.") for c in type(model).__mro__):
        hint = " Load it first: `model = mmc.models.load(path)`." if isinstance(model, (str, os.PathLike)) else ""
        raise TypeError(f"{what} must be an mmcontext MMContextEncoder, got {type(model).__name__}.{hint}")


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
