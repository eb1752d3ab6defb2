"""ClassifierHead: a small supervised torch head on cell features (joint embedding, optionally text)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._reranker import _threads

logger = logging.getLogger("mmcontext")

TASKS = ("classification", "multilabel", "regression")
CONFIG_NAME = "classifier_config.json"
WEIGHTS_NAME = "classifier.safetensors"


class ClassifierHead(nn.Module):
    """An MLP from cell features to class logits, multi-label logits or a regression value.

    Features are standardised with a per-feature mean and scale fitted on the training cells; the
    regression target is standardised too (and mapped back in :meth:`predict`). Fit with :meth:`fit`,
    save with :meth:`save`, load with :meth:`load`. Users normally go through
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
        self.register_buffer("input_mean", torch.zeros(self.input_dim))
        self.register_buffer("input_scale", torch.ones(self.input_dim))
        self.register_buffer("target_mean", torch.zeros(1))
        self.register_buffer("target_scale", torch.ones(1))
        if self.hidden_dim > 0:
            self.net = nn.Sequential(
                nn.Linear(self.input_dim, self.hidden_dim),
                nn.GELU(),
                nn.Dropout(self.dropout),
                nn.Linear(self.hidden_dim, n_out),
            )
        else:
            self.net = nn.Sequential(nn.Dropout(self.dropout), nn.Linear(self.input_dim, n_out))

    # -- config --------------------------------------------------------------------------------
    def get_config_dict(self) -> dict[str, Any]:
        """The constructor arguments, JSON-serialisable."""
        return {
            "input_dim": self.input_dim,
            "task": self.task,
            "classes": self.classes,
            "hidden_dim": self.hidden_dim,
            "dropout": self.dropout,
            "features": self.features,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw outputs (logits, or the standardised regression value) for features ``x``."""
        return self.net((x - self.input_mean) / self.input_scale)

    # -- training ------------------------------------------------------------------------------
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        epochs: int = 50,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        class_weight: str | None = None,
        num_threads: int | None = 1,
        seed: int = 0,
    ) -> ClassifierHead:
        """Train on features ``X`` (cells x :attr:`input_dim`) and targets ``y``.

        ``y`` holds class indices (classification), a 0/1 matrix cells x classes (multilabel) or
        floats (regression). ``class_weight="balanced"`` weighs classes inversely to their frequency.
        ``num_threads`` torch threads are used while training (restored afterwards; ``None`` leaves
        torch's setting): the head is small, and on a busy CPU more threads mostly wait for each other.
        Returns ``self``; per-epoch training loss is appended to :attr:`history`.
        """
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.input_dim:
            raise ValueError(f"Features have shape {X.shape}; the head expects (n_cells, {self.input_dim}).")
        if len(y) != len(X):
            raise ValueError(f"{len(X)} feature rows but {len(y)} targets.")
        if epochs < 1 or batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}.")
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        scale = X.std(axis=0)
        scale[scale < 1e-8] = 1.0
        self.input_mean.copy_(torch.from_numpy(X.mean(axis=0)))
        self.input_scale.copy_(torch.from_numpy(scale))
        xt = torch.from_numpy(X)
        weight = None
        if self.task == "classification":
            yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
            if class_weight == "balanced":
                counts = np.bincount(np.asarray(y), minlength=len(self.classes)).astype(np.float32)
                w = np.where(counts > 0, len(y) / (len(self.classes) * np.maximum(counts, 1)), 0.0)
                weight = torch.as_tensor(w, dtype=torch.float32)
            loss_fn: nn.Module = nn.CrossEntropyLoss(weight=weight)
        elif self.task == "multilabel":
            yt = torch.as_tensor(np.asarray(y, dtype=np.float32))
            if yt.ndim != 2 or yt.shape[1] != len(self.classes):
                raise ValueError(
                    f"Multilabel targets have shape {tuple(yt.shape)}; expected (n_cells, {len(self.classes)})."
                )
            pos_weight = None
            if class_weight == "balanced":
                pos = yt.sum(0).clamp(min=1)
                pos_weight = ((len(yt) - pos) / pos).clamp(max=100)
            loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        else:
            yv = np.asarray(y, dtype=np.float32)
            sd = float(yv.std()) or 1.0
            self.target_mean.fill_(float(yv.mean()))
            self.target_scale.fill_(sd)
            yt = torch.from_numpy((yv - yv.mean()) / sd)[:, None]
            loss_fn = nn.MSELoss()
        opt = torch.optim.AdamW(self.net.parameters(), lr=learning_rate, weight_decay=weight_decay)
        self.train()
        with _threads(num_threads):
            self._train_epochs(xt, yt, loss_fn, opt, epochs, batch_size, gen)
        self.eval()
        return self

    def _train_epochs(self, xt, yt, loss_fn, opt, epochs: int, batch_size: int, gen: torch.Generator) -> None:
        n = len(xt)
        for epoch in range(epochs):
            perm = torch.randperm(n, generator=gen)
            total = 0.0
            for start in range(0, n, batch_size):
                idx = perm[start : start + batch_size]
                loss = loss_fn(self(xt[idx]), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            self.history.append({"epoch": epoch + 1, "loss": total / n})

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

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``classifier_config.json`` and ``classifier.safetensors`` into the folder ``path``."""
        from safetensors.torch import save_file

        from .._io import atomic_save_dir

        path = Path(path)
        config = {**self.get_config_dict(), "history": self.history}
        with atomic_save_dir(path) as tmp:  # a kill mid-save leaves the previous version
            (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=1))
            save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(tmp / WEIGHTS_NAME))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str = "cpu") -> ClassifierHead:
        """Load a head written by :meth:`save`."""
        from safetensors.torch import load_file

        path = Path(path)
        if not (path / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"{str(path)!r} has no {CONFIG_NAME}; it is not a saved ClassifierHead.")
        config = json.loads((path / CONFIG_NAME).read_text())
        history = config.pop("history", [])
        input_dim = config.pop("input_dim")
        head = cls(input_dim, **config)
        head.load_state_dict(load_file(str(path / WEIGHTS_NAME), device=device))
        head.history = history
        return head.to(device).eval()

    def __repr__(self) -> str:
        n = len(self.classes) if self.classes else 1
        return (
            f"ClassifierHead(task={self.task!r}, input_dim={self.input_dim}, n_outputs={n}, "
            f"hidden_dim={self.hidden_dim})"
        )


ClassifierHead.__module__ = "mmcontext.models"
