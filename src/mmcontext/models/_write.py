"""Writing a model's files into a folder (the step both atomic saves share)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .._io import default_mode
from ._loader_file import write_loader_file

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def write_model(model: SentenceTransformer, folder: str | os.PathLike, **kwargs) -> None:
    """The plain ``SentenceTransformer.save`` of ``model`` into the (temporary) ``folder``, completed.

    Adds the loader file (without mmcontext installed, loading says what to install) and gives every file the
    user's umask (safetensors writes weights 0600, a temporary file's mode). Both atomic saves write through this:
    :func:`save_model` and ``model.save_pretrained``.
    """
    from sentence_transformers import SentenceTransformer

    folder = Path(folder)
    SentenceTransformer.save(model, str(folder), **kwargs)
    write_loader_file(folder)
    for file in folder.rglob("*"):
        default_mode(file, directory=file.is_dir())
