"""Keep the weights of the best validation epoch, in memory."""

from __future__ import annotations

import torch
from transformers import TrainerCallback


class KeepBestCallback(TrainerCallback):
    """Snapshot the trainable weights whenever ``metric`` improves; :meth:`restore` puts the best back.

    Tensors are tracked by identity, so the snapshot survives modules being wrapped during training
    (the frozen-text caption cache). Nothing is written to disk.
    """

    def __init__(self, model: torch.nn.Module, metric: str) -> None:
        self.metric = metric
        self.tensors = [p for p in model.parameters() if p.requires_grad] + list(model.omics_encoder.buffers())
        self.best: float | None = None
        self.best_epoch: float | None = None
        self.snapshot: list[torch.Tensor] | None = None

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        value = (metrics or {}).get(self.metric)
        if value is not None and (self.best is None or value > self.best):
            self.best, self.best_epoch = float(value), state.epoch
            self.snapshot = [t.detach().clone() for t in self.tensors]

    @torch.no_grad()
    def restore(self) -> bool:
        """Copy the best snapshot back into the model; False when there was none."""
        if self.snapshot is None:
            return False
        for tensor, saved in zip(self.tensors, self.snapshot, strict=True):
            tensor.copy_(saved)
        return True
