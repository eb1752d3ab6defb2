"""Checkpoints of an interrupted training run, next to its output folder."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile

from .._logging import logger


def checkpoint_dir(output_dir: str | os.PathLike) -> str:
    """The folder :func:`train` keeps checkpoints in: ``<output_dir>.checkpoints`` next to ``output_dir``."""
    path = os.path.abspath(os.fspath(output_dir)).rstrip(os.sep)
    return f"{path}.checkpoints"


def last_checkpoint(folder: str | os.PathLike | None) -> str | None:
    """The newest complete ``checkpoint-<step>`` in ``folder`` (its ``trainer_state.json`` parses), else ``None``.

    A checkpoint cut short by a kill lacks ``trainer_state.json`` (the Trainer writes it last); it is skipped.
    """
    if folder is None or not os.path.isdir(folder):
        return None
    steps = []
    for name in os.listdir(folder):
        if name.startswith("checkpoint-") and name.split("-", 1)[1].isdigit():
            steps.append((int(name.split("-", 1)[1]), os.path.join(folder, name)))
    for _, path in sorted(steps, reverse=True):
        try:
            with open(os.path.join(path, "trainer_state.json")) as fh:
                json.load(fh)
        except (OSError, ValueError):
            logger.warning("skipping incomplete checkpoint %s", path)
            continue
        return path
    return None


@contextlib.contextmanager
def work_dir(folder: str | None):
    """The Trainer's output folder: the checkpoint folder when checkpointing, else a temporary one."""
    if folder is not None:
        os.makedirs(folder, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="mmcontext-train-") as tmp:
        yield tmp
