"""Trainer callbacks that are not about keeping the best model (see :mod:`._keep_best`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import TrainerCallback


class NegativesEpochCallback(TrainerCallback):
    """Tell each negative sampler the epoch that begins, so multiplets draw new negatives every epoch."""

    def __init__(self, samplers: Sequence[Any]) -> None:
        self.samplers = list(samplers)

    def on_epoch_begin(self, args, state, control, **kwargs):
        for s in self.samplers:
            s.epoch = round(state.epoch or 0)
