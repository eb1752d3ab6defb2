"""Turn cell references into the vectors the omics tower reads."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..data._arrays import VectorStore

#: Separator between a store name and a cell name in a cell reference: ``"pbmc:AAACATACAACCAC-1"``.
REF_SEP = ":"


class MMContextProcessor:
    """Resolve omics inputs to a float tensor.

    Accepts, per input: a cell reference ``"<store>:<cell id>"`` (or a bare cell id when one store is
    registered), a ``{"omics": vector}`` dict, or a vector (list, tuple, numpy array or tensor).
    Stores are registered with :meth:`add_store`; the processor holds no vectors itself.
    """

    def __init__(self, sources: dict[str, dict[str, str]] | None = None) -> None:
        self.stores: dict[str, VectorStore] = {}
        #: File-backed stores by name: ``{"source": path or URL, "sha256": hash}``, opened on first use
        #: and saved with the model (see :func:`mmcontext.models.open_store`).
        self.sources: dict[str, dict[str, str]] = {k: dict(v) for k, v in (sources or {}).items()}

    def add_store(
        self, store: VectorStore | str | os.PathLike, *, known_hash: str | None = None, remember: bool = True
    ) -> VectorStore:
        """Register ``store`` under ``store.name`` (replacing a store of the same name).

        ``store`` may also be a store folder or URL, opened with :func:`mmcontext.models.open_store`.
        File-backed stores are remembered by source and hash (``remember=True``), so a saved and
        reloaded model re-attaches them on first use.
        """
        if isinstance(store, (str, os.PathLike)):
            from ..data._store import open_store

            store = open_store(store, known_hash=known_hash)
        self.stores[store.name] = store
        spec = getattr(store, "spec", None)
        if remember and callable(spec):
            self.sources[store.name] = dict(spec())
        return store

    def remove_store(self, name: str) -> None:
        """Forget the store called ``name`` (also its remembered source)."""
        self.stores.pop(name, None)
        self.sources.pop(name, None)

    def _store(self, name: str) -> VectorStore:
        if name not in self.stores and name in self.sources:
            from ..data._store import open_store_spec

            self.stores[name] = open_store_spec(self.sources[name])
        return self.stores[name]

    def _names(self) -> set[str]:
        return set(self.stores) | set(self.sources)

    def ref(self, store: str, cell_id: str) -> str:
        """Build the reference string of ``cell_id`` in ``store``."""
        return f"{store}{REF_SEP}{cell_id}"

    def _split(self, ref: str) -> tuple[str, str]:
        name, sep, cell = ref.partition(REF_SEP)
        names = self._names()
        if sep and name in names:
            return name, cell
        if len(names) == 1:
            return next(iter(names)), ref
        if not names:
            raise KeyError(
                f"Cell reference {ref!r} cannot be resolved: no vector store is registered. Pass vectors instead "
                "(e.g. `model.encode_cells(adata.obsm[...])`) or register one with `processor.add_store(...)`."
            )
        raise KeyError(f"Cell reference {ref!r} names no registered store; stores: {sorted(names)}.")

    def __call__(self, inputs: Sequence[Any], dim: int) -> torch.Tensor:
        """Return a ``(len(inputs), dim)`` float32 tensor for ``inputs``."""
        out = np.empty((len(inputs), dim), dtype=np.float32)
        by_store: dict[str, tuple[list[int], list[str]]] = {}
        for i, item in enumerate(inputs):
            if isinstance(item, dict):
                item = item.get("omics", item)
            if isinstance(item, str):
                store, cell = self._split(item)
                pos, ids = by_store.setdefault(store, ([], []))
                pos.append(i)
                ids.append(cell)
                continue
            vec = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else np.asarray(item, dtype=np.float32)
            if vec.shape != (dim,):
                raise ValueError(f"Omics input {i} has shape {vec.shape}; the model expects vectors of length {dim}.")
            out[i] = vec
        for store, (pos, ids) in by_store.items():
            rows = self._store(store).rows(ids)
            if rows.shape[1] != dim:
                raise ValueError(f"Store {store!r} holds {rows.shape[1]}-d vectors; the model expects {dim}.")
            out[pos] = rows
        return torch.from_numpy(out)

    def __repr__(self) -> str:
        return f"MMContextProcessor(stores={list(self.stores.values())!r})"
