"""mmcontext: single cells and natural language in one embedding space.

``pp``, ``tl`` and ``pl`` import cheaply; torch, sentence-transformers and datasets load
only when a function that needs them runs.
"""

from __future__ import annotations

from . import datasets, pl, pp, tl
from ._settings import settings
from ._version import __version__


def __getattr__(name: str):
    # `mmc.models` pulls in torch / sentence-transformers, so it is imported on first use.
    if name == "models":
        import importlib

        # `from . import models` here would recurse: it looks the name up through this __getattr__.
        return importlib.import_module(f"{__name__}.models")
    raise AttributeError(f"module 'mmcontext' has no attribute {name!r}")


__all__ = ["__version__", "datasets", "models", "pl", "pp", "settings", "tl"]
