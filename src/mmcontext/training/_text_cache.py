"""Encode each distinct caption once while the text tower is frozen."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from ..models import MMContextEncoder


class CachedTextPrefix(nn.Module):
    """Runs frozen text modules once per distinct input and replays the result.

    Captions repeat heavily (a few hundred distinct strings for thousands of cells), and a frozen
    tower in eval mode gives the same output for the same tokens, so the cache is exact.
    """

    def __init__(self, modules: list[nn.Module]) -> None:
        super().__init__()
        self.inner = nn.ModuleList(modules)
        self.cache: dict[bytes, torch.Tensor] = {}

    def __getattr__(self, name: str):
        # Behave as the wrapped input module (preprocess, tokenizer, max_seq_length, ...).
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner[0], name)

    def forward(self, features: dict, **kwargs) -> dict:
        ids, mask = features["input_ids"], features["attention_mask"]
        lengths = mask.sum(dim=1).tolist()
        keys = [ids[i, : lengths[i]].cpu().numpy().tobytes() for i in range(ids.shape[0])]
        first: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        rows = [i for key, i in first.items() if key not in self.cache]
        # Each new caption is encoded on its own, unpadded: its cached embedding is then the same bits
        # whichever batch first held it, so a resumed run matches an uninterrupted one exactly.
        for i in rows:
            sub = {k: _row(v, i, lengths[i], ids.shape) for k, v in features.items()}
            with torch.no_grad():
                for module in self.inner:
                    sub = module(sub)
            self.cache[keys[i]] = sub["sentence_embedding"][0].detach()
        features["sentence_embedding"] = torch.stack([self.cache[k] for k in keys])
        return features


def _row(value, i: int, length: int, shape: torch.Size):
    """Row ``i`` of a batch feature, cut to the caption's own length along the token axis."""
    if not isinstance(value, torch.Tensor) or value.shape[:1] != shape[:1]:
        return value
    row = value[i : i + 1]
    return row[:, :length] if value.ndim >= 2 and value.shape[1] == shape[1] else row


@contextlib.contextmanager
def cached_frozen_text(model: MMContextEncoder) -> Iterator[bool]:
    """While active, the frozen leading modules of the text route are memoised; yields whether any were."""
    route = model.router.sub_modules["text"]
    modules = list(route)
    n_frozen = 0
    for module in modules:
        if any(p.requires_grad for p in module.parameters()):
            break
        n_frozen += 1
    if n_frozen == 0 or not any(True for _ in modules[0].parameters()):
        yield False
        return
    model.router.sub_modules["text"] = nn.Sequential(CachedTextPrefix(modules[:n_frozen]), *modules[n_frozen:])
    try:
        yield True
    finally:
        model.router.sub_modules["text"] = route
