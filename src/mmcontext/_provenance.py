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


def text_fingerprint(model: Any) -> str:
    """A short content hash of the text tower's weights (cached until a weight changes in place).

    Query and annotation scores depend on the text tower, which may be fine-tuned; together with the
    omics fingerprint this identifies every weight a result came from.
    """
    import hashlib

    import torch

    modules = getattr(model, "text_modules", [])
    params = [p for m in modules for p in m.state_dict(keep_vars=True).values()]
    stamp = (id(model), tuple(int(getattr(p, "_version", 0)) for p in params), len(params))
    cached = getattr(model, "_mmc_text_fingerprint", None)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    h = hashlib.sha256()
    for m in modules:
        for name, tensor in sorted(m.state_dict().items()):
            h.update(name.encode())
            if tensor.numel():
                h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    digest = h.hexdigest()[:16]
    try:
        model._mmc_text_fingerprint = (stamp, digest)
    except AttributeError:  # pragma: no cover - models that refuse new attributes
        pass
    return digest
