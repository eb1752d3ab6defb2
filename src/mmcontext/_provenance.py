"""Provenance in ``adata.uns['mmcontext']``: what wrote each result, with which parameters."""

from __future__ import annotations

import datetime as _dt
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _keys

if TYPE_CHECKING:
    from anndata import AnnData

_PACKAGES = ("mmcontext", "sentence-transformers", "torch", "anndata", "scanpy", "numpy")


def versions() -> dict[str, str]:
    """Versions of the packages a result depends on."""
    out = {}
    for pkg in _PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def h5ad_safe(value: Any) -> Any:
    """Turn ``value`` into something ``write_h5ad`` stores: None -> "None", tuples -> lists, mixed lists -> str."""
    if value is None:
        return "None"
    if isinstance(value, dict):
        return {str(k): h5ad_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [h5ad_safe(v) for v in value]
        if items and all(isinstance(v, str) for v in items):
            return items
        if items and all(isinstance(v, (int, float, bool, np.number)) for v in items):
            return np.asarray(items)
        return [str(v) for v in items]
    if isinstance(value, (str, bool, int, float, np.number, np.ndarray)):
        return value
    return str(value)


def record(adata: AnnData, step: str, params: dict[str, Any]) -> None:
    """Store ``params`` under ``adata.uns['mmcontext'][step]`` with package versions and a timestamp."""
    entry = dict(params)
    entry["versions"] = versions()
    entry["time"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    adata.uns.setdefault(_keys.UNS, {})[step] = h5ad_safe(entry)
