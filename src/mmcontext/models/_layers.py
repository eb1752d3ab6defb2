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


def fit_standardiser(module: nn.Module, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Set ``module``'s per-feature mean and scale from the training matrix ``X`` (computed in ``X``'s dtype).

    Features with (near) zero spread keep scale 1. Returns the ``(mean, scale)`` arrays.
    """
    scale = X.std(axis=0)
    scale[scale < 1e-8] = 1.0
    mean = X.mean(axis=0)
    module.input_mean.copy_(torch.as_tensor(mean, dtype=module.input_mean.dtype))
    module.input_scale.copy_(torch.as_tensor(scale, dtype=module.input_scale.dtype))
    return mean, scale


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
