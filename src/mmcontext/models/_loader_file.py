"""A small loader file saved with every model, so that loading it without mmcontext says what to install.

The omics tower is mmcontext's :class:`~mmcontext.models.OmicsEncoder`. A saved model names it in
``router_config.json`` as ``modeling_mmcontext.OmicsEncoder``, and the model folder ships
``modeling_mmcontext.py``, which only imports that class from the installed package. Plain
``SentenceTransformer(path, trust_remote_code=True)`` reads that file the way it reads any model's own code, so
without mmcontext installed it stops with "pip install mmcontext" instead of ``No module named 'mmcontext'``.
:func:`mmcontext.models.load` never runs the file: it resolves the name to the installed class itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

#: Module name of the loader file in a saved model folder (``<LOADER_MODULE>.py``).
LOADER_MODULE = "modeling_mmcontext"
#: mmcontext classes a saved model names through the loader file.
LOADER_CLASSES = ("OmicsEncoder",)

_SOURCE = '''"""Loader of this model's omics tower: mmcontext's OmicsEncoder, imported from the installed package.

Saved by mmcontext {version}. Load the model with `mmcontext.models.load(path)`, or with
`SentenceTransformer(path, trust_remote_code=True)` where mmcontext is installed.
"""

try:
    from mmcontext.models import {classes}
except ImportError as err:  # mmcontext is not installed (or too old)
    raise ImportError(
        "This model was saved by mmcontext {version}: its omics tower is mmcontext's OmicsEncoder. "
        "Install it with `pip install mmcontext` (version {version} or later), then load the model with "
        "`mmcontext.models.load(path)` or `SentenceTransformer(path, trust_remote_code=True)`."
    ) from err

__all__ = {all_names!r}
'''


def loader_type(cls_name: str) -> str:
    """The type name a saved model gives mmcontext's class ``cls_name``."""
    return f"{LOADER_MODULE}.{cls_name}"


def write_loader_file(folder: str | os.PathLike) -> None:
    """Name mmcontext's classes in ``folder``'s ``router_config.json`` through the loader file, and write it."""
    from .._version import __version__

    folder = Path(folder)
    config_path = folder / "router_config.json"
    if not config_path.is_file():
        return
    config = json.loads(config_path.read_text())
    types = config.get("types", {})
    renamed = False
    for module_id, type_name in types.items():
        cls_name = type_name.rsplit(".", 1)[-1]
        if type_name.startswith("mmcontext.") and cls_name in LOADER_CLASSES:
            types[module_id], renamed = loader_type(cls_name), True
    if not renamed:
        return
    config_path.write_text(json.dumps(config, indent=4))
    source = _SOURCE.format(version=__version__, classes=", ".join(LOADER_CLASSES), all_names=list(LOADER_CLASSES))
    (folder / f"{LOADER_MODULE}.py").write_text(source)
