"""Contrastive losses for cell-caption training."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from sentence_transformers.util import cos_sim
from torch import Tensor

from .._compat import embed_columns
from .._keys import LOSSES, NEGATIVE_LOSSES  # the loss names make_loss and mmc.tl.train(loss=...) accept


def _row_keys(features: dict[str, Tensor]) -> Tensor | None:
    """One comparable row per input: token ids for text, vectors for cells."""
    for key in ("input_ids", "input_values"):
        if key in features:
            return features[key].reshape(features[key].shape[0], -1)
    return None


def same_input_mask(features: dict[str, Tensor]) -> Tensor | None:
    """Boolean ``(n, n)`` matrix: True where inputs ``i`` and ``j`` are identical (e.g. the same caption)."""
    rows = _row_keys(features)
    return None if rows is None else _same_rows(rows)


def _same_rows(rows: Tensor) -> Tensor:
    if rows.shape[1] == 1 and not rows.is_floating_point():  # one id per input (a caption table row)
        return rows[:, 0][:, None] == rows[:, 0][None, :]
    _, inverse = torch.unique(rows, dim=0, return_inverse=True)
    return inverse[:, None] == inverse[None, :]


class CaptionAwareMNRLoss(MultipleNegativesRankingLoss):
    """MultipleNegativesRankingLoss that does not treat a repeated caption as a negative.

    Cell captions repeat (every B cell of a dataset may share one), so a batch often holds the
    anchor's own caption at several positions. Plain MNRL pushes the cell away from those copies.
    Here every in-batch candidate identical to the anchor's positive is removed from the
    softmax, except the positive itself. With all-distinct captions it equals MNRL.

    ``align`` > 0 adds ``align * mean(1 - cos(cell, its caption))``: ranking alone leaves a cell only
    loosely near its caption (cosine ~0.4), so free-text queries see directions the captions never
    constrained; the alignment term pulls cells onto their captions' embeddings.

    Parameters
    ----------
    model
        The SentenceTransformer being trained.
    align
        Weight of the cell-caption alignment term (0 = plain caption-aware MNRL).
    **kwargs
        Passed to ``MultipleNegativesRankingLoss`` (``scale``, ``similarity_fct``, ...).

    """

    def __init__(self, model, align: float = 0.0, **kwargs) -> None:
        super().__init__(model, **kwargs)
        if align < 0:
            raise ValueError(f"align must be >= 0, got {align}.")
        self.align = float(align)

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        sentence_features = list(sentence_features)
        keys = _row_keys(sentence_features[1]) if len(sentence_features) > 1 else None
        embeddings = embed_columns(self.model, sentence_features)
        anchors, positives = embeddings[0], embeddings[1]
        n = anchors.shape[0]
        # normalise once (the scores and the alignment term share it), unless the model's own last module did
        if self.similarity_fct is cos_sim and not ends_normalised(self.model):
            embeddings = [torch.nn.functional.normalize(e, p=2, dim=1) for e in embeddings]
            anchors, positives = embeddings[0], embeddings[1]
        offset, columns = 0, embeddings[1:]
        if self.gather_across_devices and _distributed():
            # in-batch negatives from every process: this process's cells against all processes' captions
            from sentence_transformers.util import all_gather_with_grad, get_rank

            columns = [all_gather_with_grad(c) for c in columns]
            keys = _gather_keys(keys) if keys is not None else None
            offset = get_rank() * n
        candidates = torch.cat(columns)
        if self.similarity_fct is cos_sim:
            scores = anchors @ candidates.T * self.scale
        else:
            scores = self.similarity_fct(anchors, candidates) * self.scale
        target = torch.arange(offset, offset + n, device=scores.device)
        if keys is not None:
            mask = _same_rows(keys)[offset : offset + n].to(scores.device)
            mask[torch.arange(n), target] = False
            m = mask.shape[1]
            scores[:, :m] = scores[:, :m].masked_fill(mask, float("-inf"))
        loss = torch.nn.functional.cross_entropy(scores, target)
        if self.align:
            if self.similarity_fct is cos_sim:
                cos = (anchors * positives).sum(dim=1)
            else:
                cos = torch.nn.functional.cosine_similarity(anchors, positives, dim=1)
            loss = loss + self.align * (1 - cos).mean()
        return loss


def ends_normalised(model) -> bool:
    """Whether ``model``'s outputs are unit vectors: its last module is ``Normalize``.

    ``MatryoshkaLoss`` truncates them and normalises again.
    """
    from sentence_transformers.base.modules import Normalize

    return isinstance(model, torch.nn.Sequential) and len(model) > 0 and isinstance(model[-1], Normalize)


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _gather_keys(keys: Tensor) -> Tensor:
    """Every process's row keys, padded with zeros to the longest (no gradient)."""
    from sentence_transformers.util import all_gather

    width = torch.tensor(keys.shape[1], device=keys.device)
    torch.distributed.all_reduce(width, op=torch.distributed.ReduceOp.MAX)
    keys = torch.nn.functional.pad(keys, (0, int(width) - keys.shape[1]))
    return all_gather(keys)


def _text_keys(features: dict[str, Tensor]) -> list[bytes]:
    """The unpadded token ids of each row, comparable across columns of different padded lengths."""
    ids = features["input_ids"]
    mask = features.get("attention_mask")
    lengths = mask.sum(dim=1).tolist() if mask is not None else [ids.shape[1]] * ids.shape[0]
    rows = ids.detach().cpu().numpy()
    return [rows[i, : lengths[i]].tobytes() for i in range(len(rows))]


class TextPairMNRLoss(MultipleNegativesRankingLoss):
    """MultipleNegativesRankingLoss over (text, text) pairs whose texts repeat across pairs.

    Ontology pairs share texts: a CL name is the positive of each of its synonyms and the anchor of
    each of its ancestors; an ancestor such as ``"leukocyte"`` is the positive of dozens of pairs.
    For anchor ``i``, an in-batch candidate ``j`` is not counted as a negative when it is the same
    text as ``i``'s positive, the same text as the anchor itself, or the positive of another pair with
    the same anchor (a name with several ancestors). With all-distinct texts it equals MNRL.

    Parameters
    ----------
    model
        The SentenceTransformer being trained.
    **kwargs
        Passed to ``MultipleNegativesRankingLoss`` (``scale``, ``similarity_fct``).

    """

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        sentence_features = list(sentence_features)
        if len(sentence_features) != 2:
            raise ValueError(f"TextPairMNRLoss takes (text, text) pairs, got {len(sentence_features)} columns.")
        anchor_keys, positive_keys = (_text_keys(f) for f in sentence_features)
        _, codes = np.unique(np.array(anchor_keys + positive_keys, dtype=object), return_inverse=True)
        n = len(anchor_keys)
        anc, pos = torch.as_tensor(codes[:n]), torch.as_tensor(codes[n:])
        mask = (pos[None, :] == pos[:, None]) | (anc[None, :] == anc[:, None]) | (pos[None, :] == anc[:, None])
        mask.fill_diagonal_(False)
        anchors, positives = embed_columns(self.model, sentence_features)
        scores = self.similarity_fct(anchors, positives) * self.scale
        scores = scores.masked_fill(mask.to(scores.device), float("-inf"))
        loss = torch.nn.functional.cross_entropy(scores, torch.arange(n, device=scores.device))
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # DDP waits for a gradient of every trainable parameter each step; text pairs leave the cell tower out
            loss = loss + 0.0 * sum(p.sum() for p in self.model.parameters() if p.requires_grad)
        return loss


class CLIPLoss(torch.nn.Module):
    """Symmetric CLIP-style loss with a learnable temperature: cells -> captions and captions -> cells.

    ``loss = (CE(s * cells @ texts.T) + CE(s * texts @ cells.T)) / 2`` with ``s = exp(logit_scale)``
    (clamped at ``max_scale``), learned with the model. As in :class:`CaptionAwareMNRLoss`, in-batch copies
    of a cell's own caption are not counted as negatives, in either direction.

    Parameters
    ----------
    model
        The SentenceTransformer being trained.
    temperature
        Initial temperature (``logit_scale = log(1 / temperature)``).
    max_scale
        Upper bound of ``exp(logit_scale)``.

    """

    def __init__(self, model, temperature: float = 0.07, max_scale: float = 100.0) -> None:
        super().__init__()
        import math

        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.model = model
        self.max_scale = float(max_scale)
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    @property
    def temperature(self) -> float:
        """The current temperature, ``1 / exp(logit_scale)``."""
        return float(1.0 / self.logit_scale.detach().exp().clamp(max=self.max_scale))

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        sentence_features = list(sentence_features)
        if len(sentence_features) != 2:
            raise ValueError(f"CLIPLoss takes (cell, caption) pairs, got {len(sentence_features)} columns.")
        mask = same_input_mask(sentence_features[1])
        cells, texts = embed_columns(self.model, sentence_features)
        cells = torch.nn.functional.normalize(cells, dim=-1)
        texts = torch.nn.functional.normalize(texts, dim=-1)
        logits = self.logit_scale.exp().clamp(max=self.max_scale) * cells @ texts.T
        if mask is not None:
            mask = mask.to(logits.device)
            mask.fill_diagonal_(False)
            logits = logits.masked_fill(mask, float("-inf"))
        target = torch.arange(len(cells), device=logits.device)
        ce = torch.nn.functional.cross_entropy
        return (ce(logits, target) + ce(logits.T, target)) / 2

    def get_config_dict(self) -> dict[str, float]:
        return {"temperature": self.temperature, "max_scale": self.max_scale}


#: Dataset columns after the cell column each loss reads (besides ``label`` for contrastive).
LOSS_COLUMNS = {
    "mnrl": ("caption",),
    "cached_mnrl": ("caption",),
    "clip": ("caption",),
    "contrastive": ("caption", "label"),
    "triplet": ("caption", "negative"),
}


def matryoshka_list(matryoshka_dims, dim: int | None) -> list[int]:
    """The dimensions a ``MatryoshkaLoss`` trains: the ones asked for and the full one, largest first."""
    return sorted({*map(int, matryoshka_dims), *([dim] if dim else [])}, reverse=True)


def check_loss(name: str, matryoshka_dims=None, embedding_dim: int | None = None) -> None:
    """Raise a ValueError naming the fix if ``name`` or ``matryoshka_dims`` cannot be used."""
    if name not in LOSSES:
        raise ValueError(f"loss={name!r} is not one of {list(LOSSES)!r}.")
    if matryoshka_dims is not None:
        dims = list(matryoshka_dims)
        if not dims or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in dims):
            raise ValueError(f"matryoshka_dims must be positive ints, got {dims!r}.")
        if embedding_dim is not None and max(dims) > embedding_dim:
            raise ValueError(f"matryoshka_dims {dims!r} exceed the embedding dimension {embedding_dim}.")


def make_loss(
    name: str,
    model,
    *,
    matryoshka_dims=None,
    mini_batch_size: int = 32,
    **kwargs,
) -> torch.nn.Module:
    """Build a training loss for cell-caption data by name.

    Parameters
    ----------
    name
        ``"mnrl"`` (:class:`CaptionAwareMNRLoss`, in-batch negatives without repeated captions, with the
        cell-caption alignment term at weight ``align=1.0``),
        ``"cached_mnrl"`` (``CachedMultipleNegativesRankingLoss``: large batches on small memory, in
        chunks of ``mini_batch_size``), ``"contrastive"`` (``ContrastiveLoss`` on (cell, caption, 0/1 label)
        pairs, cosine distance, margin 1.0), ``"triplet"`` (``TripletLoss`` on (cell, caption, other caption),
        cosine distance, margin 0.3) or ``"clip"`` (:class:`CLIPLoss`).
    model
        The SentenceTransformer being trained.
    matryoshka_dims
        Wrap the loss in ``MatryoshkaLoss`` so embeddings truncated to any of these sizes still align
        (the full dimension is added when missing).
    mini_batch_size
        Chunk size of ``"cached_mnrl"``.
    **kwargs
        Passed to the loss class (e.g. ``scale``, ``margin``, ``triplet_margin``, ``temperature``).

    Returns
    -------
    The loss module.

    """
    from sentence_transformers.sentence_transformer import losses

    dim = model.get_embedding_dimension()
    check_loss(name, matryoshka_dims, dim)
    if name == "mnrl":
        kwargs.setdefault("align", 1.0)  # cells onto their captions: +0.02 query AUROC on pbmc, same accuracy
        loss = CaptionAwareMNRLoss(model, **kwargs)
    elif name == "cached_mnrl":
        loss = losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=mini_batch_size, **kwargs)
    elif name == "contrastive":
        # Negatives pushed to cosine similarity <= 0: margin 1.0 beat 0.5 and 0.2 on pbmc68k_reduced (0.81 vs 0.78).
        kwargs.setdefault("margin", 1.0)
        loss = losses.ContrastiveLoss(model, distance_metric=losses.SiameseDistanceMetric.COSINE_DISTANCE, **kwargs)
    elif name == "triplet":
        kwargs.setdefault("triplet_margin", 0.3)
        loss = losses.TripletLoss(model, distance_metric=losses.TripletDistanceMetric.COSINE, **kwargs)
    else:
        loss = CLIPLoss(model, **kwargs)
    if matryoshka_dims is not None:
        loss = losses.MatryoshkaLoss(model, loss, matryoshka_list(matryoshka_dims, dim))
    return loss


def loss_columns(
    name: str, cells: list, captions: list[str], *, labels: list[str] | None = None, seed: int = 0
) -> dict[str, list]:
    """Training columns for loss ``name`` from matched cells and captions.

    ``"triplet"`` adds a ``negative`` column: for each cell a caption of another label
    (:func:`mmcontext.data._negatives.draw_negatives`, the sampler every path uses; without ``labels`` each caption
    is its own label, so any other caption). ``"contrastive"`` returns two rows per cell, its caption with
    ``label`` 1 and such a negative with ``label`` 0. The other losses take ``cell`` and ``caption`` as they are.
    A negative is only possible with at least two distinct captions.
    """
    from ..data._negatives import draw_negatives

    check_loss(name)
    if name not in NEGATIVE_LOSSES:
        return {"cell": list(cells), "caption": list(captions)}
    uniq = sorted({str(c) for c in captions})
    if len(uniq) < 2:
        raise ValueError(f"loss={name!r} needs negative captions, but all cells share one caption {uniq[0]!r}.")
    neg = draw_negatives(captions, labels=labels, seed=seed)
    if name == "triplet":
        return {"cell": list(cells), "caption": list(captions), "negative": neg}
    return {
        "cell": list(cells) + list(cells),
        "caption": list(captions) + neg,
        "label": [1.0] * len(cells) + [0.0] * len(cells),
    }
