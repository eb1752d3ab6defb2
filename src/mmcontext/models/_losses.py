"""Contrastive losses for cell-caption training."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from sentence_transformers.base.losses.merged_forward import embed_columns
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from torch import Tensor


def _row_keys(features: dict[str, Tensor]) -> Tensor | None:
    """One comparable row per input: token ids for text, vectors for cells."""
    for key in ("input_ids", "input_values"):
        if key in features:
            return features[key].reshape(features[key].shape[0], -1)
    return None


def same_input_mask(features: dict[str, Tensor]) -> Tensor | None:
    """Boolean ``(n, n)`` matrix: True where inputs ``i`` and ``j`` are identical (e.g. the same caption)."""
    rows = _row_keys(features)
    if rows is None:
        return None
    _, inverse = torch.unique(rows, dim=0, return_inverse=True)
    return inverse[:, None] == inverse[None, :]


class CaptionAwareMNRLoss(MultipleNegativesRankingLoss):
    """MultipleNegativesRankingLoss that does not treat a repeated caption as a negative.

    Cell captions repeat (every B cell of a dataset may share one), so a batch often holds the
    anchor's own caption at several positions. Plain MNRL pushes the cell away from those copies.
    Here every in-batch candidate identical to the anchor's positive is removed from the
    softmax, except the positive itself. With all-distinct captions it equals MNRL.
    """

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:  # noqa: D102
        sentence_features = list(sentence_features)
        mask = same_input_mask(sentence_features[1]) if len(sentence_features) > 1 else None
        embeddings = embed_columns(self.model, sentence_features)
        anchors, candidates = embeddings[0], torch.cat(embeddings[1:])
        scores = self.similarity_fct(anchors, candidates) * self.scale
        n = anchors.shape[0]
        if mask is not None:
            mask = mask.to(scores.device)
            mask.fill_diagonal_(False)
            scores[:, :n] = scores[:, :n].masked_fill(mask, float("-inf"))
        target = torch.arange(n, device=scores.device)
        return torch.nn.functional.cross_entropy(scores, target)
