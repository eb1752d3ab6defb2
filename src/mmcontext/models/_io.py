"""Saving models so that an interrupted save never replaces a good copy with a broken one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .. import _model_attrs
from .._io import atomic_dir
from .._settings import hf_progress
from ._write import write_model

if TYPE_CHECKING:
    from ._encoder import MMContextEncoder

__all__ = ["save_model"]


def save_model(model: MMContextEncoder, path: str | os.PathLike, **kwargs) -> Path:
    """``save_pretrained`` into a temporary sibling folder, then move it into place.

    A process killed mid-save leaves the previous folder at ``path`` intact.
    """
    with atomic_dir(path) as tmp:
        with hf_progress():
            write_model(model, tmp, **kwargs)
        history = _model_attrs.history(model)
        if history is not None:
            (tmp / "training_history.json").write_text(json.dumps(history, indent=1))
    return Path(path).resolve()
