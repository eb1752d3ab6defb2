"""Every touch point on another library's private API, in one place.

Each helper here wraps one private attribute or method of sentence-transformers (or another library) and is
covered by a test in ``tests/test_compat.py`` that fails loudly when the other library changes it, instead of
silently changing what mmcontext does. Private methods that mmcontext's subclasses override (they cannot be moved
here) are listed in :data:`PRIVATE_OVERRIDES` and checked by the same test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

#: ``(module, class, method)`` of other libraries' private methods that mmcontext's subclasses override.
PRIVATE_OVERRIDES = (
    # models/_encoder.MMContextEncoder: add the mmcontext section to the stock README.md
    ("sentence_transformers", "SentenceTransformer", "_create_model_card"),
    # training/_trainer.MMContextTrainer: save and resume through the plain text route
    ("sentence_transformers", "SentenceTransformerTrainer", "_save"),
    ("sentence_transformers", "SentenceTransformerTrainer", "_load_from_checkpoint"),
    # training/_trainer.MMContextTrainer: caption-table batches read from numpy columns
    ("sentence_transformers", "SentenceTransformerTrainer", "_build_dataloader"),
    # training/_trainer.MMContextTrainer: gradient clipping in one foreach pass on a single process
    ("sentence_transformers", "SentenceTransformerTrainer", "_clip_grad_norm"),
)


def embed_columns(model: Any, sentence_features: Any) -> Any:
    """Embed each input column of a loss batch through ``model`` (sentence-transformers' merged forward)."""
    from sentence_transformers.base.losses.merged_forward import embed_columns as _embed_columns

    return _embed_columns(model, sentence_features)


@contextlib.contextmanager
def cached_lomo_check() -> Iterator[None]:
    """While active, accelerate's optimizer step asks whether ``lomo_optim`` is installed once, not twice a step.

    ``AcceleratedOptimizer.step`` calls ``is_lomo_available()`` (an ``importlib`` search of ``sys.path``) on every
    step: 0.3 s of a 700-step epoch of a small model.
    """
    import accelerate.optimizer as optimizer_module

    check = optimizer_module.is_lomo_available
    available = check()
    optimizer_module.is_lomo_available = lambda: available
    try:
        yield
    finally:
        optimizer_module.is_lomo_available = check


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


def is_read_only_backed(adata: Any) -> bool:
    """Whether ``adata`` is backed by a file opened read-only (anndata keeps the mode in ``adata.file._filemode``)."""
    return bool(adata.isbacked) and getattr(adata.file, "_filemode", "r") == "r"
