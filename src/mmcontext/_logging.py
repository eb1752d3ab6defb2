"""The package logger; mmcontext never configures the root logger."""

from __future__ import annotations

import logging

logger = logging.getLogger("mmcontext")


def log_added(*entries: tuple[str, str]) -> None:
    """Log one line naming the keys a function wrote, in the scanpy way.

    ``log_added(("X_mmc", "obsm"))`` logs ``added 'X_mmc' (adata.obsm)``.
    """
    parts = ", ".join(f"'{key}' (adata.{where})" for key, where in entries)
    logger.info("added %s", parts)
