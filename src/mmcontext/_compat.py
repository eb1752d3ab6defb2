"""Every touch point on another library's private API, in one place.

Each helper here wraps one private attribute or method of sentence-transformers (or another library) and is
covered by a test in ``tests/test_compat.py`` that fails loudly when the other library changes it, instead of
silently changing what mmcontext does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def resolve_module_classes(model: Any, classes: Mapping[str, type]) -> None:
    """Make ``model`` (before its ``__init__`` runs) resolve these ``modules.json`` types to these classes.

    sentence-transformers 6 looks a module type up in the instance's ``_module_classes`` before importing it, and
    passes the mapping on to ``Router.load``; every type left out still goes through its ``trust_remote_code`` gate.
    This is what ``SentenceTransformer._load_with_module_classes`` does, split so a subclass can set it in ``__init__``.
    """
    from sentence_transformers.base.model import BaseModel

    if not hasattr(BaseModel, "_module_classes") or not hasattr(BaseModel, "_load_module_class_from_ref"):
        raise RuntimeError(
            "This sentence-transformers version no longer resolves module classes through `_module_classes`; "
            "mmcontext cannot load its models without trusting remote code. Install sentence-transformers>=6.2,<7."
        )
    model._module_classes = dict(classes)
