"""Building blocks shared by the torch modules: the input standardiser and the MLP.

The standardiser keeps its statistics in two buffers of the module that uses it, ``input_mean`` and
``input_scale``, so saved weights of every module keep the same names.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


def register_standardiser(module: nn.Module, dim: int) -> None:
    """Give ``module`` the buffers ``input_mean`` (zeros) and ``input_scale`` (ones) of length ``dim``."""
    module.register_buffer("input_mean", torch.zeros(dim))
    module.register_buffer("input_scale", torch.ones(dim))


def fit_standardiser(module: nn.Module, X: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Set ``module``'s per-feature mean and scale from the training matrix ``X`` (or its ``rows``).

    Computed in float64 chunk by chunk, so neither a float64 copy nor a copy of the selected rows of ``X`` is made.
    Features with (near) zero spread keep scale 1. Returns the ``(mean, scale)`` arrays.
    """
    mean, scale = column_stats(X, rows)
    scale[scale < 1e-8] = 1.0
    module.input_mean.copy_(torch.as_tensor(mean, dtype=module.input_mean.dtype))
    module.input_scale.copy_(torch.as_tensor(scale, dtype=module.input_scale.dtype))
    return mean, scale


def column_stats(X: np.ndarray, rows: np.ndarray | None = None, chunk: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation (ddof 0) of ``X[rows]`` in float64, merged chunk by chunk (Chan)."""
    n_rows = X.shape[0] if rows is None else len(rows)
    if n_rows == 0:
        raise ValueError("No rows to compute the input standardisation from.")
    mean, m2, n = np.zeros(X.shape[1]), np.zeros(X.shape[1]), 0
    for start in range(0, n_rows, chunk):
        block = X[start : start + chunk] if rows is None else X[np.sort(rows[start : start + chunk])]
        block = np.asarray(block, dtype=np.float64)
        nb, mb = len(block), block.mean(axis=0)
        delta, total = mb - mean, n + nb
        m2 += ((block - mb) ** 2).sum(axis=0) + delta**2 * (n * nb / total)
        mean += delta * (nb / total)
        n = total
    return mean, np.sqrt(m2 / n)


def standardise(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``(x - input_mean) / input_scale`` with ``module``'s statistics."""
    return (x - module.input_mean) / module.input_scale


def mlp(dims: Sequence[int], dropout: float) -> nn.Sequential:
    """Linear layers through ``dims`` with GELU and dropout between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(itertools.pairwise(dims)):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(dims) - 2:
            layers += [nn.GELU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)
