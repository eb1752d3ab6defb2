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


def record(adata: AnnData, step: str, params: dict[str, Any], *, key: str | None = None) -> None:
    """Store ``params`` under ``adata.uns['mmcontext'][step]`` with package versions and a timestamp.

    ``uns['mmcontext'][step]`` holds the latest call of ``step``. With ``key`` (the result's ``key_added``) the
    record is also kept under ``uns['mmcontext']['by_key'][key]``, so a second call under another ``key_added``
    does not erase the first one's record; :func:`find_record` reads either.
    """
    entry = dict(params)
    entry["versions"] = versions()
    entry["time"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    entry = h5ad_safe(entry)
    uns = adata.uns.setdefault(_keys.UNS, {})
    uns[step] = entry
    if key is not None:
        uns.setdefault(_keys.RECORDS, {})[str(key)] = {**entry, "step": step}


def find_record(adata: AnnData, step: str, key: str | None = None) -> dict[str, Any]:
    """The record of ``step`` (its latest call), or with ``key`` the record of the call that wrote ``key``.

    Returns ``{}`` when there is none (also for AnnData written before records were kept per key, unless the
    latest call of ``step`` wrote ``key``).
    """
    uns = adata.uns.get(_keys.UNS, {})
    latest = uns.get(step, {})
    if key is None:
        return latest
    by_key = uns.get(_keys.RECORDS, {}).get(str(key))
    if by_key is not None and by_key.get("step") == step:
        return by_key
    return latest if latest.get("key_added") == key else {}


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
