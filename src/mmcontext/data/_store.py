"""File-backed embedding stores: memory-mapped initial embeddings addressed by cell id.

A store is a folder of three ``.npy`` files and a manifest::

    <store>/
        vectors.npy      float32 (n_cells, dim), row i = the initial embedding of cell i
        ids.npy          bytes (n_cells,), the cell ids (utf-8) sorted, for binary search
        rows.npy         int64 (n_cells,), rows.npy[k] = the row of the k-th sorted id
        manifest.json    name, shape, and the sha256 of each file

The store's hash is the sha256 of ``manifest.json``, which holds the sha256 of every data file, so
one hash pins the whole content. Stores are opened with :func:`open_store` from a local folder or a
URL (downloaded once into a cache with pooch, every file hash-checked); ids are resolved to rows
by binary search on the memory-mapped sorted ids, so neither the vectors nor the ids are loaded
into memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import replace_dir, tmp_dir_beside
from .._validation import as_float_matrix

logger = logging.getLogger("mmcontext")

FORMAT = "mmcontext-embedding-store"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FILES = ("vectors.npy", "ids.npy", "rows.npy")
#: Environment variable naming the folder where stores downloaded from URLs are cached.
CACHE_ENV = "MMCONTEXT_CACHE"


class StoreIntegrityError(ValueError):
    """A store file does not match the hash recorded for it (corrupted, truncated or replaced)."""


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in chunks (constant memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _strip(known_hash: str | None) -> str | None:
    if known_hash is None:
        return None
    algo, sep, value = known_hash.partition(":")
    if sep and algo.lower() != "sha256":
        raise ValueError(f"Only sha256 hashes are supported for stores, got {known_hash!r}.")
    return (value if sep else algo).lower()


class EmbeddingStore:
    """A memory-mapped store of initial embeddings (see the module docs for the layout).

    Create one with :func:`write_store`, open one with :func:`open_store`. It implements the
    :class:`~mmcontext.models._processor.VectorStore` protocol used by
    :class:`~mmcontext.models.MMContextProcessor`: :meth:`rows` maps cell ids to vectors.

    Attributes
    ----------
    name
        Store name; cell references are ``"<name>:<cell id>"``.
    dim
        Length of the vectors.
    n_cells
        Number of cells.
    sha256
        Content hash (sha256 of the manifest, which lists the sha256 of every file).
    source
        Where the store was opened from (a folder path or a URL); recorded with a model.

    """

    def __init__(
        self, path: str | os.PathLike, *, source: str | None = None, verify: bool = True, known_hash: str | None = None
    ) -> None:
        self.path = Path(path)
        manifest_file = self.path / MANIFEST
        if not manifest_file.is_file():
            raise FileNotFoundError(
                f"{manifest_file} not found: {str(self.path)!r} is not an embedding store. "
                "Write one with `mmc.models.write_store(adata, path)`."
            )
        raw = manifest_file.read_bytes()
        self.sha256 = hashlib.sha256(raw).hexdigest()
        expected = _strip(known_hash)
        if expected is not None and expected != self.sha256:
            raise StoreIntegrityError(
                f"Store {str(self.path)!r}: manifest hash {self.sha256} does not match the expected {expected}. "
                "The store was changed or replaced; rebuild it or pass the right `known_hash=`."
            )
        manifest = json.loads(raw)
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{manifest_file} is not an mmcontext embedding store manifest.")
        self.manifest = manifest
        self.name = str(manifest["name"])
        self.n_cells = int(manifest["n_cells"])
        self.dim = int(manifest["dim"])
        self.source = source or str(self.path.resolve())
        if verify:
            self.verify()
        self._vectors: np.ndarray | None = None
        self._ids: np.ndarray | None = None
        self._rows: np.ndarray | None = None

    # -- integrity -----------------------------------------------------------------------------
    def verify(self) -> None:
        """Check every file against the sha256 in the manifest; :class:`StoreIntegrityError` if one differs."""
        for fname, expected in self.manifest["files"].items():
            fpath = self.path / fname
            if not fpath.is_file():
                raise StoreIntegrityError(f"Store {self.name!r}: file {str(fpath)!r} is missing. Rebuild the store.")
            got = sha256_file(fpath)
            if got != expected:
                raise StoreIntegrityError(
                    f"Store {self.name!r}: {str(fpath)!r} is corrupted or truncated (sha256 {got[:12]}..., "
                    f"manifest says {expected[:12]}...). Rebuild it with `mmc.models.write_store` or download it again."
                )

    # -- lazy arrays ---------------------------------------------------------------------------
    @property
    def vectors(self) -> np.ndarray:
        """The ``(n_cells, dim)`` float32 matrix, memory-mapped read-only."""
        if self._vectors is None:
            self._vectors = np.load(self.path / "vectors.npy", mmap_mode="r")
            if self._vectors.shape != (self.n_cells, self.dim):
                raise StoreIntegrityError(
                    f"Store {self.name!r}: vectors.npy has shape {self._vectors.shape}, manifest says "
                    f"{(self.n_cells, self.dim)}. Rebuild the store."
                )
        return self._vectors

    def _index(self) -> tuple[np.ndarray, np.ndarray]:
        if self._ids is None:
            self._ids = np.load(self.path / "ids.npy", mmap_mode="r")
            self._rows = np.load(self.path / "rows.npy", mmap_mode="r")
        return self._ids, self._rows

    @property
    def ids(self) -> np.ndarray:
        """Cell ids in row order (loads the id index into memory)."""
        sorted_ids, rows = self._index()
        out = np.empty(self.n_cells, dtype=object)
        out[np.asarray(rows)] = np.char.decode(np.asarray(sorted_ids), "utf-8")
        return out

    def positions(self, ids: Sequence[str]) -> np.ndarray:
        """Row of each id (``-1`` where the id is not in the store), by binary search on the sorted ids."""
        sorted_ids, rows = self._index()
        q = np.array([str(i).encode("utf-8") for i in ids], dtype=f"S{max(sorted_ids.dtype.itemsize, 1)}")
        if len(q) == 0:
            return np.empty(0, dtype=np.int64)
        # ids longer than the widest stored id are truncated by the cast; they cannot be in the store
        too_long = np.array([len(str(i).encode("utf-8")) > sorted_ids.dtype.itemsize for i in ids])
        k = np.searchsorted(sorted_ids, q)
        k_clip = np.minimum(k, self.n_cells - 1)
        found = (k < self.n_cells) & (sorted_ids[k_clip] == q) & ~too_long
        return np.where(found, rows[k_clip], -1).astype(np.int64)

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        """Vectors of ``ids`` in order, shape ``(len(ids), dim)``; KeyError for unknown ids."""
        pos = self.positions(ids)
        if (pos < 0).any():
            missing = [ids[i] for i in np.flatnonzero(pos < 0)[:3]]
            raise KeyError(f"Cell ids {missing!r} not found in store {self.name!r} ({self.n_cells} cells).")
        # sorted, unique reads touch each page once; then put rows back in the asked order
        uniq, inverse = np.unique(pos, return_inverse=True)
        return np.asarray(self.vectors[uniq], dtype=np.float32)[inverse.reshape(-1)]

    def __contains__(self, cell_id: str) -> bool:
        return bool(self.positions([cell_id])[0] >= 0)

    def __len__(self) -> int:
        return self.n_cells

    def spec(self) -> dict[str, str]:
        """JSON-ready record of where to find this store again: ``{"source": ..., "sha256": ...}``."""
        return {"source": self.source, "sha256": self.sha256}

    def __repr__(self) -> str:
        return f"EmbeddingStore(name={self.name!r}, n={self.n_cells}, dim={self.dim}, sha256={self.sha256[:12]}...)"


def write_store(
    X: np.ndarray,
    ids: Sequence[str],
    path: str | os.PathLike,
    *,
    name: str | None = None,
    overwrite: bool = False,
) -> EmbeddingStore:
    """Write a ``(n_cells, dim)`` matrix and its cell ids to a memory-mappable store folder.

    The folder is written next to ``path`` under a temporary name and moved into place with
    ``os.replace``, so an interrupted write never leaves a half-written store at ``path``. Writing
    the same content again to an existing store is a no-op (the content hash is compared).
    The AnnData-facing form, ``mmc.models.write_store(adata, path)``, reads ``X`` and ``ids`` from
    ``adata`` and calls this.

    Parameters
    ----------
    X
        Initial embeddings, one row per cell.
    ids
        Cell ids, one per row (unique, non-empty).
    path
        Store folder to create.
    name
        Store name used in cell references ``"<name>:<cell id>"``; default: the folder name.
    overwrite
        Replace an existing store with different content (otherwise an error).

    Returns
    -------
    The opened :class:`EmbeddingStore`. Writes ``vectors.npy``, ``ids.npy``, ``rows.npy`` and
    ``manifest.json`` under ``path``.

    """
    ids = [str(i) for i in ids]
    X = as_float_matrix(X, what="Store matrix")
    if X.shape[0] != len(ids):
        raise ValueError(f"{len(ids)} ids but a matrix of shape {X.shape}.")
    if X.shape[0] == 0:
        raise ValueError("Cannot write an empty store (0 cells).")
    enc = np.array([i.encode("utf-8") for i in ids], dtype=object)
    if any(len(b) == 0 or b.endswith(b"\x00") for b in enc):
        raise ValueError("Cell ids must be non-empty and must not end with a NUL byte.")
    width = max(len(b) for b in enc)
    id_arr = np.array(enc.tolist(), dtype=f"S{width}")
    order = np.argsort(id_arr, kind="stable")
    sorted_ids = id_arr[order]
    if (sorted_ids[1:] == sorted_ids[:-1]).any():
        dup = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]][:3]
        examples = [d.decode() for d in dup]
        raise ValueError(f"Cell ids are not unique (e.g. {examples!r}); run `adata.obs_names_make_unique()`.")

    target = Path(path).resolve()
    name = name or target.name
    if ":" in name or not name:
        raise ValueError(f"Store name {name!r} must be non-empty and contain no ':' (it prefixes cell references).")
    tmp = tmp_dir_beside(target)
    try:
        np.save(tmp / "vectors.npy", np.ascontiguousarray(X, dtype=np.float32))
        np.save(tmp / "ids.npy", sorted_ids)
        np.save(tmp / "rows.npy", order.astype(np.int64))
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "name": name,
            "n_cells": int(X.shape[0]),
            "dim": int(X.shape[1]),
            "dtype": "float32",
            "files": {f: sha256_file(tmp / f) for f in FILES},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        new_hash = sha256_file(tmp / MANIFEST)
        if target.exists():
            old = target / MANIFEST
            if old.is_file() and sha256_file(old) == new_hash:
                try:
                    EmbeddingStore(target, verify=True)
                except (StoreIntegrityError, ValueError, OSError):
                    pass  # damaged copy: replace it below
                else:
                    shutil.rmtree(tmp, ignore_errors=True)
                    logger.info("store %r already up to date at %s", name, target)
                    return EmbeddingStore(target, verify=False)
            if not overwrite and old.is_file():
                raise FileExistsError(
                    f"A different store exists at {str(target)!r}; pass `overwrite=True` or choose another path."
                )
            if not overwrite and any(target.iterdir()):
                raise FileExistsError(f"{str(target)!r} exists and is not an embedding store; choose another path.")
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote store %r (%d cells x %d) to %s", name, X.shape[0], X.shape[1], target)
    return EmbeddingStore(target, verify=False)


def cache_dir() -> Path:
    """Folder where stores downloaded from URLs are cached (``$MMCONTEXT_CACHE`` or the OS cache)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env) / "stores"
    import pooch

    return Path(pooch.os_cache("mmcontext")) / "stores"


def is_url(path: str | os.PathLike) -> bool:
    """True for ``http(s)://``, ``ftp://`` and ``doi:`` addresses."""
    return isinstance(path, str) and path.split("://")[0].lower() in ("http", "https", "ftp", "sftp") and "://" in path


def open_store(
    path_or_url: str | os.PathLike,
    *,
    known_hash: str | None = None,
    verify: bool = True,
    cache: str | os.PathLike | None = None,
) -> EmbeddingStore:
    """Open an embedding store from a local folder or a URL.

    A URL names the store folder (``https://host/stores/pbmc``) or its manifest
    (``.../pbmc/manifest.json``). The manifest is fetched with pooch and checked against
    ``known_hash`` (when given); each data file is then fetched and checked against the sha256 the
    manifest records. Files are cached under ``cache`` (default :func:`cache_dir`), in a folder
    named by the manifest hash, and re-downloaded when a cached copy no longer matches.

    Parameters
    ----------
    path_or_url
        Store folder, or URL of one.
    known_hash
        Expected store hash (``store.sha256``, with or without a ``"sha256:"`` prefix). Strongly
        recommended for URLs.
    verify
        Hash every data file of a local store before use (reads the files once, in chunks).
    cache
        Cache folder for downloads.

    Returns
    -------
    The :class:`EmbeddingStore`; nothing is loaded into memory until rows are read.

    Raises
    ------
    StoreIntegrityError
        A file does not match its recorded hash (corrupted or truncated).

    """
    if not is_url(path_or_url):
        return EmbeddingStore(path_or_url, verify=verify, known_hash=known_hash)
    import pooch

    url = str(path_or_url)
    base = url[: -len(MANIFEST)] if url.endswith("/" + MANIFEST) else url.rstrip("/") + "/"
    root = Path(cache) if cache is not None else cache_dir()
    expected = _strip(known_hash)
    staging = root / "manifests" / hashlib.sha256(base.encode()).hexdigest()[:16]
    try:
        manifest_path = pooch.retrieve(
            base + MANIFEST,
            known_hash=f"sha256:{expected}" if expected else None,
            fname=MANIFEST,
            path=staging,
            progressbar=False,
        )
    except ValueError as err:
        raise StoreIntegrityError(
            f"Store manifest at {base + MANIFEST!r} does not match the expected hash: {err}"
        ) from err
    manifest_hash = sha256_file(manifest_path)
    manifest = json.loads(Path(manifest_path).read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{base + MANIFEST!r} is not an mmcontext embedding store manifest.")
    folder = root / manifest_hash
    folder.mkdir(parents=True, exist_ok=True)
    for fname, sha in manifest["files"].items():
        try:
            pooch.retrieve(base + fname, known_hash=f"sha256:{sha}", fname=fname, path=folder, progressbar=False)
        except ValueError as err:
            raise StoreIntegrityError(
                f"Store {manifest.get('name')!r}: downloaded {base + fname!r} does not match its sha256 in the "
                f"manifest (corrupted or truncated on the server or in transit): {err}"
            ) from err
    shutil.copyfile(manifest_path, folder / MANIFEST)
    # pooch has just checked every file's hash
    return EmbeddingStore(folder, source=url, verify=False, known_hash=manifest_hash)


def open_store_spec(spec: dict[str, Any], **kwargs) -> EmbeddingStore:
    """Open a store from a record written by :meth:`EmbeddingStore.spec`."""
    return open_store(spec["source"], known_hash=spec.get("sha256"), **kwargs)


EmbeddingStore.__module__ = "mmcontext.models"
