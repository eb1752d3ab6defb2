"""Package-wide settings (``mmc.settings``)."""

from __future__ import annotations

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
