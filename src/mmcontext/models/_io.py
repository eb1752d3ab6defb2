"""Saving models so that an interrupted save never replaces a good copy with a broken one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .. import _model_attrs
from .._io import atomic_dir, default_mode
from .._settings import hf_progress
from ._loader_file import write_loader_file

if TYPE_CHECKING:
    from ._encoder import MMContextEncoder

__all__ = ["save_model"]


def save_model(model: MMContextEncoder, path: str | os.PathLike, **kwargs) -> Path:
    """``save_pretrained`` into a temporary sibling folder, then move it into place.

    A process killed mid-save leaves the previous folder at ``path`` intact.
    """
    from sentence_transformers import SentenceTransformer

    with atomic_dir(path) as tmp:
        with hf_progress():
            # the plain save into the temporary folder (the model's own save_pretrained is atomic too; not twice)
            SentenceTransformer.save(model, str(tmp), **kwargs)
        write_loader_file(tmp)  # without mmcontext installed, loading says what to install
        history = _model_attrs.history(model)
        if history is not None:
            (tmp / "training_history.json").write_text(json.dumps(history, indent=1))
        for file in tmp.rglob("*"):  # safetensors writes weights 0600 (a temporary file's mode): use the umask
            default_mode(file, directory=file.is_dir())
    return Path(path).resolve()
