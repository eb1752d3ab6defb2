"""The training loop of a :class:`~mmcontext.models.ClassifierHead` (AdamW over full passes of the cells)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..models._threads import torch_threads

if TYPE_CHECKING:
    from ..models import ClassifierHead


def fit_head(
    head: ClassifierHead,
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
    """Train ``head`` on features ``X`` (cells x :attr:`~mmcontext.models.ClassifierHead.input_dim`) and targets ``y``.

    ``y`` holds class indices (classification), a 0/1 matrix cells x classes (multilabel) or
    floats (regression). ``class_weight="balanced"`` weighs classes inversely to their frequency.
    ``num_threads`` torch threads are used while training (restored afterwards; ``None`` leaves
    torch's setting): the head is small, and on a busy CPU more threads mostly wait for each other.
    Returns ``head``; per-epoch training loss is appended to ``head.history``.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != head.input_dim:
        raise ValueError(f"Features have shape {X.shape}; the head expects (n_cells, {head.input_dim}).")
    if len(y) != len(X):
        raise ValueError(f"{len(X)} feature rows but {len(y)} targets.")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}.")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    scale = X.std(axis=0)
    scale[scale < 1e-8] = 1.0
    head.input_mean.copy_(torch.from_numpy(X.mean(axis=0)))
    head.input_scale.copy_(torch.from_numpy(scale))
    xt = torch.from_numpy(X)
    weight = None
    if head.task == "classification":
        yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
        if class_weight == "balanced":
            counts = np.bincount(np.asarray(y), minlength=len(head.classes)).astype(np.float32)
            w = np.where(counts > 0, len(y) / (len(head.classes) * np.maximum(counts, 1)), 0.0)
            weight = torch.as_tensor(w, dtype=torch.float32)
        loss_fn: nn.Module = nn.CrossEntropyLoss(weight=weight)
    elif head.task == "multilabel":
        yt = torch.as_tensor(np.asarray(y, dtype=np.float32))
        if yt.ndim != 2 or yt.shape[1] != len(head.classes):
            raise ValueError(
                f"Multilabel targets have shape {tuple(yt.shape)}; expected (n_cells, {len(head.classes)})."
            )
        pos_weight = None
        if class_weight == "balanced":
            pos = yt.sum(0).clamp(min=1)
            pos_weight = ((len(yt) - pos) / pos).clamp(max=100)
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    else:
        yv = np.asarray(y, dtype=np.float32)
        sd = float(yv.std()) or 1.0
        head.target_mean.fill_(float(yv.mean()))
        head.target_scale.fill_(sd)
        yt = torch.from_numpy((yv - yv.mean()) / sd)[:, None]
        loss_fn = nn.MSELoss()
    opt = torch.optim.AdamW(head.net.parameters(), lr=learning_rate, weight_decay=weight_decay)
    head.train()
    with torch_threads(num_threads):
        _train_epochs(head, xt, yt, loss_fn, opt, epochs, batch_size, gen)
    head.eval()
    return head


def _train_epochs(
    head: ClassifierHead, xt, yt, loss_fn, opt, epochs: int, batch_size: int, gen: torch.Generator
) -> None:
    n = len(xt)
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            loss = loss_fn(head(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        head.history.append({"epoch": epoch + 1, "loss": total / n})
