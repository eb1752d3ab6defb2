"""Package-wide settings (``mmc.settings``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class Settings:
    """Settings shared by all mmcontext functions.

    Attributes
    ----------
    progress
        Show tqdm progress bars for encoding and training.
    device
        Torch device for models (``"auto"`` picks CUDA, then MPS, then CPU).
    batch_size
        Default number of cells or texts encoded per batch.

    """

    progress: bool = True
    device: str = "auto"
    batch_size: int = 1024


settings = Settings()


@contextlib.contextmanager
def hf_progress() -> Iterator[None]:
    """Silence the progress bars of transformers / huggingface_hub while ``settings.progress`` is off."""
    if settings.progress:
        yield
        return
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
