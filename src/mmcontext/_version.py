"""The installed package's version (core: modules below the package read it here, not from ``mmcontext``)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mmcontext")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
