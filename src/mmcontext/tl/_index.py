"""A nearest-neighbour index over a joint embedding, built once, saved with what it covers, checked when reused."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .. import _keys
from .._errors import StaleIndexError
from .._io import atomic_dir
from .._logging import log_added, logger
from .._provenance import record, versions
from .._validation import MMContextKeyError, _closest, check_adata, check_key_added, check_model
from ..data._ann import BACKENDS
from ..data._topk import is_dask

if TYPE_CHECKING:
    from anndata import AnnData

    from ..models import MMContextEncoder

#: File in an index folder describing what the index covers.
MANIFEST = "manifest.json"
#: Version of the index folder layout.
INDEX_FORMAT = 1


def obs_names_digest(names: Any) -> str:
    """A short sha256 of the cell names in order: two AnnData with the same digest hold the same cells in order."""
    return hashlib.sha256("\n".join(map(str, names)).encode()).hexdigest()[:16]


@dataclass
class CellIndex:
    """A nearest-neighbour index over the cell vectors ``adata.obsm[key]`` (unit rows, inner product).

    Built by :func:`build_index`, reloaded by :func:`load_index`, searched by :func:`mmcontext.tl.search`. It
    records which cells it covers (their number and a hash of ``obs_names`` in order), which ``obsm`` key it was
    built from and the fingerprint of the model that embedded them; :meth:`check` refuses other cells, another
    key or another model with a :class:`~mmcontext._errors.StaleIndexError` naming what differs.
    """

    method: str
    key: str
    n_obs: int
    dim: int
    obs_names_digest: str
    model_fingerprint: str
    params: dict[str, Any]
    backend: Any = field(repr=False)
    path: Path | None = None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row positions (int64, -1 where the index found fewer) and scores of each query's ``k`` nearest cells."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"Query vectors have shape {queries.shape}; this index holds {self.dim}-d vectors.")
        return self.backend.search(queries, min(int(k), self.n_obs))

    def manifest(self) -> dict[str, Any]:
        """What :meth:`save` writes to ``manifest.json``."""
        return {
            "format": INDEX_FORMAT,
            "method": self.method,
            "key": self.key,
            "n_obs": self.n_obs,
            "dim": self.dim,
            "obs_names_digest": self.obs_names_digest,
            "model_fingerprint": self.model_fingerprint,
            "params": self.params,
            "versions": versions(),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the index and its manifest into the folder ``path`` (a temporary sibling, moved into place)."""
        with atomic_dir(path) as tmp:
            self.backend.save(tmp)
            (tmp / MANIFEST).write_text(json.dumps(self.manifest(), indent=1))
        self.path = Path(path).resolve()
        return self.path

    def check(self, adata: AnnData, *, key: str | None = None, model_fingerprint: str | None = None) -> None:
        """Raise :class:`~mmcontext._errors.StaleIndexError` if the index does not fit ``adata``.

        That is: it covers other cells (or another order), was built from another ``obsm`` key than ``key``, or
        from the embedding of another model than ``model_fingerprint``.
        """
        where = f" at {str(self.path)!r}" if self.path else ""
        problems = []
        if adata.n_obs != self.n_obs or obs_names_digest(adata.obs_names) != self.obs_names_digest:
            problems.append(
                f"it covers {self.n_obs} cells (obs_names digest {self.obs_names_digest}) but adata has "
                f"{adata.n_obs} (digest {obs_names_digest(adata.obs_names)}): other cells or another order"
            )
        if key is not None and key != self.key:
            problems.append(f"it was built from obsm[{self.key!r}], not obsm[{key!r}]")
        if model_fingerprint is not None and model_fingerprint != self.model_fingerprint:
            problems.append(
                f"it was built from the embedding of model {self.model_fingerprint}, not of this model "
                f"({model_fingerprint})"
            )
        if problems:
            raise StaleIndexError(
                f"The {self.method} index{where} is stale: {'; '.join(problems)}. Rebuild it: "
                f"`mmc.tl.build_index(adata, key={key or self.key!r}, method={self.method!r}, path=...)` "
                "(after `mmc.tl.embed(adata, model)` when the model changed)."
            )


def embedding_fingerprint(adata: AnnData, key: str) -> str | None:
    """The model fingerprint :func:`mmcontext.tl.embed` recorded for ``obsm[key]`` (None: not recorded)."""
    prov = adata.uns.get(_keys.UNS, {}).get("embed", {})
    if prov.get("key_added", _keys.X_MMC) == key and "model_fingerprint" in prov:
        return str(prov["model_fingerprint"])
    return None


def get_vectors(adata: AnnData, key: str) -> Any:
    """``adata.obsm[key]`` as it is (numpy, memory map or dask array), checked to be a 2-D matrix of unit rows."""
    if key not in adata.obsm:
        raise MMContextKeyError(
            f"adata.obsm[{key!r}] not found.{_closest(key, adata.obsm.keys())} Run `mmc.tl.embed(adata, model)` "
            "first, or pass the key of the joint embedding as `use_rep=`."
        )
    X = adata.obsm[key]
    if getattr(X, "ndim", None) != 2 or getattr(X, "dtype", np.dtype("O")).kind not in "fiu":
        raise ValueError(f"adata.obsm[{key!r}] must be a numeric cells x dim matrix, got {type(X).__name__}.")
    if not is_dask(X):
        X = np.asarray(X)
        sample = np.asarray(X[: min(len(X), 1000)], dtype=np.float32)
        if not np.isfinite(sample).all() or not np.allclose(np.linalg.norm(sample, axis=1), 1, atol=1e-3):
            raise ValueError(
                f"adata.obsm[{key!r}] does not hold finite unit-length rows (a joint embedding does): pass the key "
                "`mmc.tl.embed` wrote as `use_rep=` / `key=`."
            )
    return X


def build_index(
    adata: AnnData,
    *,
    key: str = _keys.X_MMC,
    method: Literal["exact", "faiss", "usearch", "hnswlib"] = "exact",
    path: str | os.PathLike | None = None,
    model: MMContextEncoder | None = None,
    **params: Any,
) -> CellIndex:
    """Build a nearest-neighbour index over the joint embedding, once, for :func:`mmcontext.tl.search`.

    Parameters
    ----------
    adata
        Annotated data matrix holding the joint embedding in ``obsm[key]`` (numpy, memory map or dask array).
    key
        ``obsm`` key of the joint embedding (:func:`mmcontext.tl.embed`'s ``key_added``).
    method
        ``"exact"`` (every cell scored at search time; needs nothing), ``"faiss"`` (inverted lists,
        ``IVF<sqrt(n)>,Flat``, or ``IVF<sqrt(n)>,SQ8`` from 250,000 cells on: a quarter of the memory, recall@100
        0.98; ``nprobe=48``), ``"usearch"`` or ``"hnswlib"`` (HNSW graphs). The approximate ones need the optional
        extra: ``pip install 'mmcontext[search]'``.
    path
        Folder to save the index to (written atomically). Default: beside the data for a backed AnnData
        (``<file>.<key>.<method>.index``), else not saved.
    model
        The model that embedded the cells; default: the fingerprint :func:`mmcontext.tl.embed` recorded.
    **params
        Backend settings overriding the defaults: faiss ``factory``, ``nprobe``, ``train_size``; usearch
        ``connectivity``, ``expansion_add``, ``expansion_search``, ``dtype``; hnswlib ``M``, ``ef_construction``,
        ``ef``.

    Returns
    -------
    The :class:`CellIndex` (saved to ``path`` when given), and ``adata.uns['mmcontext']['index']``: ``method``,
    ``key``, ``path``, ``n_obs``, ``model_fingerprint`` and the backend ``params``.

    Examples
    --------
    >>> index = mmc.tl.build_index(adata, method="faiss", path="atlas.index")  # doctest: +SKIP
    >>> hits = mmc.tl.search(adata, model, "natural killer cells", index="atlas.index")  # doctest: +SKIP

    """
    check_adata(adata)
    check_key_added(key, what="key")
    if method not in BACKENDS:
        raise ValueError(f"method={method!r} is not one of {sorted(BACKENDS)!r}.")
    vectors = get_vectors(adata, key)
    fingerprint = embedding_fingerprint(adata, key)
    if model is not None:
        from ..models import model_fingerprint

        check_model(model)
        if fingerprint is not None and fingerprint != model_fingerprint(model):
            raise StaleIndexError(
                f"adata.obsm[{key!r}] was embedded by model {fingerprint}, not by the model passed "
                f"({model_fingerprint(model)}). Run `mmc.tl.embed(adata, model)` first."
            )
        fingerprint = model_fingerprint(model)
    if fingerprint is None:
        raise ValueError(
            f"adata.uns['mmcontext']['embed'] does not say which model embedded obsm[{key!r}]; pass `model=` so the "
            "index records it (search then refuses another model)."
        )
    if path is None and adata.isbacked:
        path = Path(adata.filename).with_name(f"{Path(adata.filename).name}.{key}.{method}.index")
    backend_cls = BACKENDS[method]
    n, dim = vectors.shape
    unknown = sorted(set(params) - set(backend_cls.defaults(n, dim)))
    if unknown:
        raise TypeError(
            f"method={method!r} takes no parameter {unknown!r}; it takes {sorted(backend_cls.defaults(n, dim))!r}."
        )
    settings = {**backend_cls.defaults(n, dim), **params}
    backend = backend_cls(settings, dim)
    backend.build(vectors, n)
    index = CellIndex(method, key, n, dim, obs_names_digest(adata.obs_names), fingerprint, settings, backend)
    if path is not None:
        index.save(path)
        logger.info("saved the %s index over %d cells to %s", method, n, index.path)
    record(adata, "index", {**index.manifest(), "path": str(index.path) if index.path else None})
    log_added(("index", "uns['mmcontext']"))
    return index


def load_index(path: str | os.PathLike) -> CellIndex:
    """Load an index saved by :func:`build_index` (``path=``) or :meth:`CellIndex.save`.

    Parameters
    ----------
    path
        The index folder.

    Returns
    -------
    The :class:`CellIndex`; :func:`mmcontext.tl.search` checks it against the AnnData and model it is used with.

    Examples
    --------
    >>> index = mmc.tl.load_index("atlas.index")  # doctest: +SKIP

    """
    folder = Path(path)
    manifest_file = folder / MANIFEST
    if not manifest_file.is_file():
        raise FileNotFoundError(
            f"{str(manifest_file)!r} is missing: {str(folder)!r} is not an index folder written by "
            "`mmc.tl.build_index(..., path=)`. Build the index again."
        )
    try:
        m = json.loads(manifest_file.read_text(encoding="utf-8"))
        method, params = m["method"], dict(m["params"])
        fields = (m["key"], int(m["n_obs"]), int(m["dim"]), m["obs_names_digest"], m["model_fingerprint"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{str(manifest_file)!r} is corrupted ({err!r}); build the index again.") from None
    if m.get("format") != INDEX_FORMAT or method not in BACKENDS:
        raise ValueError(
            f"{str(folder)!r} holds an index of format {m.get('format')!r} / method {method!r}, which "
            f"this mmcontext does not read (format {INDEX_FORMAT}); build the index again."
        )
    backend = BACKENDS[method](params, fields[2])
    backend.load(folder)
    return CellIndex(method, *fields, params, backend, path=folder.resolve())
