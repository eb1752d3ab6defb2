"""Validation during training: how well held-out cells retrieve their own caption."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sentence_transformers.base.evaluation.evaluator import BaseEvaluator


class CellCaptionEvaluator(BaseEvaluator):
    """Cell -> caption retrieval among the distinct captions of a validation set.

    Each cell is ranked against every distinct caption (identical captions count once, so a
    caption shared by many cells is one candidate). Reports ``accuracy`` (the own caption ranks
    first; the primary metric), ``mrr`` and ``recall@3``, prefixed with ``name``.

    Parameters
    ----------
    cells
        Cell references (resolved by the model's processor) or vectors.
    captions
        The caption of each cell.
    name
        Prefix of the metric names (``"validation"`` -> ``eval_validation_accuracy`` in the trainer's log).
    batch_size
        Cells or texts per forward pass.

    """

    def __init__(
        self, cells: Sequence[Any], captions: Sequence[str], *, name: str = "validation", batch_size: int = 256
    ) -> None:
        super().__init__()
        if len(cells) != len(captions) or not len(cells):
            raise ValueError(
                f"Need as many captions as cells (and at least one), got {len(cells)} and {len(captions)}."
            )
        self.cells = list(cells)
        self.captions = [str(c) for c in captions]
        self.name = name
        self.batch_size = batch_size
        self.primary_metric = f"{name}_accuracy"

    def __call__(self, model, output_path: str | None = None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
        """Return the retrieval metrics of ``model`` on the validation cells."""
        distinct, truth = np.unique(self.captions, return_inverse=True)
        opts = {"batch_size": self.batch_size, "convert_to_numpy": True, "show_progress_bar": False}
        cells = encode_cell_inputs(model, self.cells, batch_size=self.batch_size)
        texts = model.encode(list(distinct), task="text", **opts)
        sims = cells @ texts.T
        own = sims[np.arange(len(sims)), truth]
        rank = (sims > own[:, None]).sum(axis=1)  # 0 = the own caption is the most similar
        metrics = {
            "accuracy": float(np.mean(rank == 0)),
            "mrr": float(np.mean(1.0 / (rank + 1))),
            "recall@3": float(np.mean(rank < 3)),
        }
        metrics = self.prefix_name_to_metrics(metrics, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics


#: Cell inputs resolved to one matrix at a time by :func:`encode_cell_inputs` (never all validation inputs at once).
RESOLVE_CHUNK = 16_384


def encode_cell_inputs(model, cells: Sequence[Any], *, batch_size: int = 256) -> np.ndarray:
    """Unit embeddings of cell references or vectors, as ``model.encode(cells, task="omics")`` gives them.

    An :class:`~mmcontext.models.MMContextEncoder` resolves the inputs through its processor chunk by chunk and
    embeds each chunk with :meth:`~mmcontext.models.MMContextEncoder.encode_cells` (large batches, no per-row
    work); any other model goes through ``encode``.
    """
    cells = list(cells)
    if not (hasattr(model, "encode_cells") and hasattr(model, "processor")):
        opts = {"batch_size": batch_size, "convert_to_numpy": True, "show_progress_bar": False}
        return model.encode(cells, task="omics", normalize_embeddings=True, **opts)
    parts = []
    for start in range(0, len(cells), RESOLVE_CHUNK):
        X = model.processor(cells[start : start + RESOLVE_CHUNK], model.input_dim).numpy()
        parts.append(model.encode_cells(X, show_progress_bar=False))
    return np.concatenate(parts) if parts else np.zeros((0, model.get_embedding_dimension()), np.float32)
