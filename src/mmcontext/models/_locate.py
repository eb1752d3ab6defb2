"""Where a model name points: a local folder, a cached Hub repository, or the Hub (checked before any download).

A mistyped folder must not be taken for a Hugging Face Hub id and retried against the network for a minute:
names that look like paths, and any name while the Hub cannot be reached, fail at once with a message naming
the folder, the nearest existing folder and how to load from the Hub.
"""

from __future__ import annotations

import difflib
import os
import re
import threading
from pathlib import Path

__all__ = ["ModelNotFoundError", "hub_offline", "hub_reachable", "locate_model"]

#: A Hub repository id: ``name`` or ``namespace/name`` (letters, digits, ``-_.``; no leading ``.``).
_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*$")
_TRUE = {"1", "on", "yes", "true"}


class ModelNotFoundError(FileNotFoundError):
    """No model folder at the given path, and it cannot be (or was not meant to be) fetched from the Hub."""


def hub_offline() -> bool:
    """Whether Hugging Face Hub downloads are switched off (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    if any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - a dependency of sentence-transformers
        return True
    return bool(constants.is_offline_mode() if hasattr(constants, "is_offline_mode") else constants.HF_HUB_OFFLINE)


def hub_reachable(timeout: float = 1.5) -> bool:
    """Whether a TCP connection to the Hub endpoint opens within ``timeout`` seconds (name lookup included)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme != "http" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)  # getaddrinfo has no timeout of its own
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _cached_on_hub(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "modules.json"), str)
    except Exception:  # an unusable cache means "not cached"
        return False


def _looks_like_path(name: str) -> bool:
    if os.path.isabs(name) or name.startswith((".", "~")) or "\\" in name or name.endswith(("/", os.sep)):
        return True
    if name.count("/") > 1 or not _HUB_ID.match(name):
        return True
    parent = os.path.dirname(name)
    if parent and os.path.isdir(parent):
        return True
    return _nearest_folder(name)[1] is not None


def _nearest_folder(name: str) -> tuple[Path, Path | None]:
    """The deepest existing folder above ``name``, and a folder in it whose name is close to ``name``'s (or None)."""
    target = Path(name).expanduser()
    parent = target.parent if str(target.parent) else Path(".")
    while not parent.is_dir() and parent != parent.parent:
        parent = parent.parent
    try:
        folders = sorted(p.name for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        folders = []
    close = difflib.get_close_matches(target.name, folders, n=1, cutoff=0.75)
    return parent, (parent / close[0]) if close else None


def _not_found(name: str, why: str) -> ModelNotFoundError:
    parent, close = _nearest_folder(name)
    nearest = f"Did you mean {str(close)!r} ({str(close.absolute())!r})? " if close is not None else ""
    return ModelNotFoundError(
        f"No model folder at {name!r} ({str(Path(name).expanduser().absolute())!r}); the nearest existing folder is "
        f"{str(parent.absolute())!r}. {nearest}{why} To load from the Hugging Face Hub, pass a repository id such as "
        "'user/model' with network access (unset HF_HUB_OFFLINE); a model downloaded before loads from the cache."
    )


def locate_model(name: str) -> str:
    """Return ``name`` when it is a folder, a cached Hub repository or a Hub id the Hub can be asked for.

    Raises
    ------
    ModelNotFoundError
        For a name that looks like a path (has a separator, starts with ``.`` or ``~``, or is close to an existing
        folder's name), or any name not in the local Hub cache while the Hub is offline or unreachable.

    """
    if os.path.exists(name):
        return name
    if _looks_like_path(name):
        raise _not_found(name, "It looks like a path, so the Hub was not asked.")
    if _cached_on_hub(name):
        return name
    if hub_offline():
        raise _not_found(name, f"{name!r} is not in the local Hub cache and HF_HUB_OFFLINE is set.")
    if not hub_reachable():
        raise _not_found(name, f"{name!r} is not in the local Hub cache and the Hub cannot be reached.")
    return name
