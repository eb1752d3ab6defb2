"""Checks of model objects and saved model folders (by class name: no import of the torch layer)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


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


def check_trained(obj: Any, *, what: str, kind: str, fit: str) -> None:
    """Raise unless ``obj`` is an mmcontext ``kind`` (class name) that was trained (its ``history`` is not empty).

    A head or reranker fresh from its constructor has random weights; its predictions would look like results.
    """
    if not any(c.__name__ == kind and c.__module__.startswith("mmcontext.") for c in type(obj).__mro__):
        hint = f" Load it first: `mmc.models.{kind}.load(path)`." if isinstance(obj, (str, os.PathLike)) else ""
        raise TypeError(f"{what} must be an mmcontext {kind}, got {type(obj).__name__}.{hint}")
    if not getattr(obj, "history", None):
        raise ValueError(
            f"{what} is an untrained {kind} (no training history): its weights are random. Train it with `{fit}`, "
            f"or load a trained one with `mmc.models.{kind}.load(path)`."
        )
