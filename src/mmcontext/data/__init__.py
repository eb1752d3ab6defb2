"""Data layer: embedding stores, negative sampling, train/validation/test splits (no torch, no AnnData).

Array-level building blocks; the AnnData-facing functions that use them live in :mod:`mmcontext.pp`.
"""

from ._arrays import ArrayStore, VectorStore
from ._store import EmbeddingStore, StoreIntegrityError, open_store, write_store

__all__ = ["ArrayStore", "EmbeddingStore", "StoreIntegrityError", "VectorStore", "open_store", "write_store"]
