"""The vector-store protocol the omics tower reads through, and its in-memory form."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import pandas as pd


class VectorStore(Protocol):
    """Anything that maps cell ids to rows of initial-embedding vectors."""

    name: str
    dim: int

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        """Return the vectors of ``ids`` in order, shape ``(len(ids), dim)``; KeyError for unknown ids."""


class ArrayStore:
    """An in-memory store: cell ids and a matrix of their initial embeddings (e.g. ``adata.obsm``)."""

    def __init__(self, name: str, ids: Sequence[str], X: np.ndarray) -> None:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[0] != len(ids):
            raise ValueError(f"Store {name!r}: {len(ids)} ids but a matrix of shape {X.shape}.")
        self.name = name
        self.index = pd.Index(ids)
        if not self.index.is_unique:
            raise ValueError(f"Store {name!r}: cell ids are not unique.")
        self.X = X
        self.dim = X.shape[1]

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        pos = self.index.get_indexer(ids)
        if (pos < 0).any():
            missing = [ids[i] for i in np.flatnonzero(pos < 0)[:3]]
            raise KeyError(f"Cell ids {missing!r} not found in store {self.name!r} ({len(self.index)} cells).")
        return self.X[pos]

    def __repr__(self) -> str:
        return f"ArrayStore(name={self.name!r}, n={len(self.index)}, dim={self.dim})"
