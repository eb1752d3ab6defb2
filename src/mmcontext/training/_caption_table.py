"""Training with a frozen text tower: each distinct caption encoded once, batches gathered by row index.

With the text encoder frozen, a caption's output never changes during training, so the training loop only
needs the omics tower. Instead of tokenizing every batch's captions and resolving cell references by name, the
training rows hold two integers -- the cell's row in the input matrix and its caption's row in a table of
precomputed caption outputs -- and :class:`IndexCollator` turns a batch of them into the omics tower's input
vectors and the caption rows. :class:`CaptionTable` stands in for the frozen text modules while training and
looks those rows up. The model, its loss and the Trainer are the stock ones; the saved model is the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sentence_transformers.base.data_collator import BaseDataCollator

from ._text_cache import FrozenTextPrefix, frozen_prefix

if TYPE_CHECKING:
    from ..models import MMContextEncoder

#: Feature key (after the column prefix) holding each row's caption table row.
ROWS = "caption_rows"
#: Distinct captions encoded per forward pass when the table is built.
TABLE_BATCH = 64


class CaptionTable(FrozenTextPrefix):
    """Frozen text modules whose outputs for the training captions were computed once.

    Features carrying ``caption_rows`` (from :class:`IndexCollator`) get those rows of ``table`` as their
    ``sentence_embedding``; any other text (an evaluator's, ``encode``) runs through the wrapped modules.
    """

    def __init__(self, modules: list[torch.nn.Module], table: torch.Tensor) -> None:
        torch.nn.Module.__init__(self)
        # Plain attributes, not submodules: the frozen modules (in eval mode) are left out of the per-step
        # model.train() walk, of the parameters an optimizer or DDP sees, and of any state dict.
        self.inner = list(modules)
        self.table = table
        for module in self.inner:
            module.eval()

    def forward(self, features: dict, **kwargs) -> dict:
        rows = features.get(ROWS)
        if rows is None:
            return self.run_inner(features)
        features["sentence_embedding"] = self.table[rows.to(self.table.device)]
        return features


def caption_codes(model: MMContextEncoder, texts: Sequence[str]) -> tuple[np.ndarray, torch.Tensor]:
    """Encode the distinct token sequences of ``texts`` once with the frozen leading text modules.

    Returns the table row of each text (texts that tokenize alike share a row, as they are one input to the
    model) and the table (rows x the frozen modules' output dimension, on the model's device). Texts of the
    same token length are encoded together, unpadded, in the modules' eval mode, as the model sees them.
    """
    n_frozen = frozen_prefix(model)
    if not n_frozen:
        raise ValueError("The text encoder trains; the caption table needs a frozen text tower.")
    modules = list(model.router.sub_modules["text"])[:n_frozen]
    keys: dict[bytes, int] = {}
    codes = np.empty(len(texts), dtype=np.int64)
    rows: list[dict[str, torch.Tensor]] = []  # one unpadded feature row per distinct token sequence
    for start in range(0, len(texts), 1024):
        chunk = list(texts[start : start + 1024])
        features = model.preprocess(chunk, task="text")
        ids, mask = features["input_ids"], features["attention_mask"]
        lengths = mask.sum(dim=1).tolist()
        for i, length in enumerate(lengths):
            key = ids[i, :length].numpy().tobytes()
            if key not in keys:
                keys[key] = len(rows)
                rows.append(
                    {
                        k: v[i : i + 1, :length]
                        for k, v in features.items()
                        if isinstance(v, torch.Tensor) and v.ndim == 2 and v.shape == ids.shape
                    }
                )
            codes[start + i] = keys[key]
    table: list[torch.Tensor | None] = [None] * len(rows)
    by_length: dict[int, list[int]] = {}
    for r, row in enumerate(rows):
        by_length.setdefault(row["input_ids"].shape[1], []).append(r)
    was_training = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        with torch.no_grad():
            for group in by_length.values():
                for s in range(0, len(group), TABLE_BATCH):
                    part = group[s : s + TABLE_BATCH]
                    feats = {k: torch.cat([rows[r][k] for r in part]).to(model.device) for k in rows[part[0]]}
                    for m in modules:
                        feats = m(feats)
                    for r, emb in zip(part, feats["sentence_embedding"], strict=True):
                        table[r] = emb
    finally:
        for m, mode in zip(modules, was_training, strict=True):
            m.train(mode)
    return codes, torch.stack(table)


@dataclass
class IndexCollator(BaseDataCollator):
    """Collate rows of ``{"cell": row in X, <text column>: caption table row, ["label"]}`` without tokenizing.

    Produces the features the stock collator would, in the same column order: ``cell_input_values``
    (``X``'s rows, float32) routed to the omics tower, and for each text column ``<column>_input_ids`` (the
    table row, so identical captions compare equal in the losses) and ``<column>_caption_rows``.
    """

    X: np.ndarray | None = field(default=None, repr=False)

    def __call__(self, features: list[dict[str, Any]] | dict[str, np.ndarray]) -> dict[str, Any]:
        """Collate a list of rows, or a batch of rows already gathered by column (:class:`IndexRows`)."""
        if not isinstance(features, dict):
            features = {c: np.array([f[c] for f in features]) for c in features[0]}
        batch: dict[str, Any] = {}
        columns = list(features)
        if "label" in columns:
            batch["label"] = torch.as_tensor(features["label"], dtype=torch.float32)
            columns.remove("label")
        for column in columns:
            idx = np.asarray(features[column], dtype=np.int64)
            if column == "cell":
                batch["cell_input_values"] = torch.from_numpy(np.ascontiguousarray(self.X[idx], dtype=np.float32))
                batch["cell_task"] = "omics"
            else:
                rows = torch.from_numpy(idx)
                batch[f"{column}_input_ids"] = rows[:, None]
                batch[f"{column}_{ROWS}"] = rows
                batch[f"{column}_task"] = "text"
        return batch


class IndexRows(torch.utils.data.Dataset):
    """The rows of a Dataset of integer columns (:func:`index_columns`), held as numpy arrays.

    A batch of rows is one fancy index per column (``__getitems__``), handed to :class:`IndexCollator` as a dict
    of columns: no Arrow gather and no per-row dicts in the training loop.
    """

    def __init__(self, dataset: Any) -> None:
        table = dataset.with_format("arrow")[:]  # the rows in dataset order, each column as numpy (no per-row work)
        self.columns = {name: table.column(name).to_numpy() for name in table.column_names}
        self.n_rows = len(dataset)

    def __len__(self) -> int:
        return self.n_rows

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {name: values[i] for name, values in self.columns.items()}

    def __getitems__(self, rows: list[int]) -> dict[str, np.ndarray]:
        rows = np.asarray(rows, dtype=np.int64)
        return {name: values[rows] for name, values in self.columns.items()}


def fast_loader(loader: torch.utils.data.DataLoader) -> torch.utils.data.DataLoader:
    """``loader`` (same batch sampler, collator and worker settings) reading its rows through :class:`IndexRows`."""
    return torch.utils.data.DataLoader(
        IndexRows(loader.dataset),
        batch_sampler=loader.batch_sampler,
        collate_fn=loader.collate_fn,
        num_workers=loader.num_workers,
        pin_memory=loader.pin_memory,
        persistent_workers=loader.persistent_workers,
        prefetch_factor=loader.prefetch_factor,
    )


def index_columns(columns: dict[str, list], codes: dict[str, int]) -> dict[str, np.ndarray]:
    """``loss_columns`` built on cell row positions, with each text replaced by its caption table row."""
    out: dict[str, np.ndarray] = {}
    for name, values in columns.items():
        if name == "cell":
            out[name] = np.asarray(values, dtype=np.int64)
        elif name == "label":
            out[name] = np.asarray(values, dtype=np.float64)
        else:
            out[name] = np.fromiter((codes[v] for v in values), dtype=np.int64, count=len(values))
    return out
