"""Encode each distinct caption once while the text tower is frozen."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from ..models import MMContextEncoder


class FrozenTextPrefix(nn.Module):
    """Stands in for the frozen leading modules of the text route during training (``inner``: those modules).

    Checkpoints and saved models are written with ``inner`` put back (see ``MMContextTrainer``).
    """

    def __init__(self, modules: list[nn.Module]) -> None:
        super().__init__()
        self.inner = nn.ModuleList(modules)

    def __getattr__(self, name: str):
        # Behave as the wrapped input module (preprocess, tokenizer, max_seq_length, ...).
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner[0], name)

    def run_inner(self, features: dict) -> dict:
        """The wrapped modules' output for ``features``, without gradients."""
        with torch.no_grad():
            for module in self.inner:
                features = module(features)
        return features


class CachedTextPrefix(FrozenTextPrefix):
    """Runs frozen text modules once per distinct input and replays the result.

    Captions repeat heavily (a few hundred distinct strings for thousands of cells), and a frozen
    tower in eval mode gives the same output for the same tokens, so the cache is exact.
    """

    def __init__(self, modules: list[nn.Module]) -> None:
        super().__init__(modules)
        self.cache: dict[bytes, torch.Tensor] = {}

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
            sub = self.run_inner({k: _row(v, i, lengths[i], ids.shape) for k, v in features.items()})
            self.cache[keys[i]] = sub["sentence_embedding"][0].detach()
        features["sentence_embedding"] = torch.stack([self.cache[k] for k in keys])
        return features


def _row(value, i: int, length: int, shape: torch.Size):
    """Row ``i`` of a batch feature, cut to the caption's own length along the token axis."""
    if not isinstance(value, torch.Tensor) or value.shape[:1] != shape[:1]:
        return value
    row = value[i : i + 1]
    return row[:, :length] if value.ndim >= 2 and value.shape[1] == shape[1] else row


def frozen_prefix(model: MMContextEncoder) -> int:
    """How many leading modules of the text route have no trainable parameter (0 when the text encoder trains)."""
    modules = list(model.router.sub_modules["text"])
    n_frozen = 0
    for module in modules:
        if any(p.requires_grad for p in module.parameters()):
            break
        n_frozen += 1
    return n_frozen if n_frozen and any(True for _ in modules[0].parameters()) else 0


@contextlib.contextmanager
def frozen_text_route(model: MMContextEncoder, wrap: Callable[[list[nn.Module]], FrozenTextPrefix]) -> Iterator[None]:
    """While active, the frozen leading modules of the text route are replaced by ``wrap(those modules)``."""
    route = model.router.sub_modules["text"]
    modules = list(route)
    n_frozen = frozen_prefix(model)
    model.router.sub_modules["text"] = nn.Sequential(wrap(modules[:n_frozen]), *modules[n_frozen:])
    try:
        yield
    finally:
        model.router.sub_modules["text"] = route


@contextlib.contextmanager
def cached_frozen_text(model: MMContextEncoder) -> Iterator[bool]:
    """While active, the frozen leading modules of the text route are memoised; yields whether any were."""
    if not frozen_prefix(model):
        yield False
        return
    with frozen_text_route(model, CachedTextPrefix):
        yield True
