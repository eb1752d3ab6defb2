"""ClassifierHead: a small supervised torch head on cell features (joint embedding, optionally text)."""

from __future__ import annotations

import logging
import os
import typing
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._keys import TASKS
from ._layers import mlp, register_standardiser, standardise
from ._persist import SavedModule

logger = logging.getLogger("mmcontext")

CONFIG_NAME = "classifier_config.json"
WEIGHTS_NAME = "classifier.safetensors"


class ClassifierHead(SavedModule):
    """An MLP from cell features to class logits, multi-label logits or a regression value.

    Features are standardised with a per-feature mean and scale fitted on the training cells; the
    regression target is standardised too (and mapped back in :meth:`predict`). Fit with
    :func:`mmcontext.training.fit_head`, save with :meth:`save`, load with :meth:`load`. Users normally go through
    :func:`mmcontext.tl.fit_classifier` and :func:`mmcontext.tl.classify`.

    Parameters
    ----------
    input_dim
        Number of input features per cell.
    task
        ``"classification"`` (one label per cell, softmax), ``"multilabel"`` (any number of labels,
        sigmoid per label) or ``"regression"`` (one number per cell).
    classes
        Label names (classification, multilabel); ignored for regression.
    hidden_dim
        Width of the hidden layer; ``0`` gives a linear (logistic / linear regression) head.
    dropout
        Dropout before the output layer during training.
    features
        JSON-serialisable description of the features the head reads (stored, checked by ``tl.classify``).

    """

    config_keys: typing.ClassVar[list[str]] = ["input_dim", "task", "classes", "hidden_dim", "dropout", "features"]
    config_file_name = CONFIG_NAME
    weights_file_name = WEIGHTS_NAME
    state_keys: typing.ClassVar[list[str]] = ["history"]

    def __init__(
        self,
        input_dim: int,
        *,
        task: str = "classification",
        classes: list[str] | None = None,
        hidden_dim: int = 256,
        dropout: float = 0.1,
        features: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
        if input_dim < 1:
            raise ValueError(f"input_dim must be >= 1, got {input_dim}.")
        classes = [str(c) for c in (classes or [])]
        if task == "classification" and len(classes) < 2:
            raise ValueError(f"A classification head needs at least 2 classes, got {classes!r}.")
        if task == "multilabel" and len(classes) < 1:
            raise ValueError("A multilabel head needs at least 1 label.")
        self.input_dim = int(input_dim)
        self.task = task
        self.classes = classes if task != "regression" else []
        self.hidden_dim = int(hidden_dim)
        self.dropout = float(dropout)
        self.features = dict(features or {})
        self.history: list[dict[str, float]] = []
        n_out = 1 if task == "regression" else len(self.classes)
        register_standardiser(self, self.input_dim)
        self.register_buffer("target_mean", torch.zeros(1))
        self.register_buffer("target_scale", torch.ones(1))
        if self.hidden_dim > 0:
            self.net = mlp([self.input_dim, self.hidden_dim, n_out], self.dropout)
        else:
            self.net = nn.Sequential(nn.Dropout(self.dropout), nn.Linear(self.input_dim, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw outputs (logits, or the standardised regression value) for features ``x``."""
        return self.net(standardise(self, x))

    # -- prediction ----------------------------------------------------------------------------
    @torch.inference_mode()
    def predict(self, X: np.ndarray, *, batch_size: int = 4096) -> np.ndarray:
        """Predict probabilities or values for features ``X``.

        Returns class probabilities (cells x classes; rows sum to 1 for classification, independent
        per label for multilabel) or predicted values (regression, shape ``(n_cells,)``).
        """
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.input_dim:
            raise ValueError(f"Features have shape {X.shape}; the head expects (n_cells, {self.input_dim}).")
        was = self.training
        self.eval()
        outs = []
        for start in range(0, len(X), batch_size):
            out = self(torch.from_numpy(X[start : start + batch_size]).to(self.input_mean.device))
            if self.task == "classification":
                out = out.softmax(-1)
            elif self.task == "multilabel":
                out = out.sigmoid()
            else:
                out = out[:, 0] * self.target_scale + self.target_mean
            outs.append(out.float().cpu().numpy())
        self.train(was)
        if not outs:
            return np.empty((0,) if self.task == "regression" else (0, len(self.classes)), dtype=np.float32)
        return np.concatenate(outs).astype(np.float32)

    # -- persistence (models/_persist.py) -------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``classifier_config.json`` and ``classifier.safetensors`` into the folder ``path`` (atomic)."""
        return super().save(path)

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str = "cpu") -> ClassifierHead:
        """Load a head written by :meth:`save`."""
        return super().load(path, device=device)

    def __repr__(self) -> str:
        n = len(self.classes) if self.classes else 1
        return (
            f"ClassifierHead(task={self.task!r}, input_dim={self.input_dim}, n_outputs={n}, "
            f"hidden_dim={self.hidden_dim})"
        )


ClassifierHead.__module__ = "mmcontext.models"
