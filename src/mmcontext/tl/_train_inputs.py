"""What :func:`mmcontext.tl.train` builds from its inputs.

The captioned cells, the labels negatives must differ from, the input space, the validation evaluator and the
label-probability calibration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._provenance import find_record
from ..pp._captions import caption_column

if TYPE_CHECKING:
    from anndata import AnnData

    from ..models import MMContextEncoder

#: Held-out cells whose loss and metrics are computed each epoch and that fit the calibration: a random subset of a
#: larger validation split (10,000 cells estimate them to within about a percent; scoring 100,000 cost a tenth of an
#: epoch at 1M cells).
SCORED_VALIDATION_CELLS = 10_000


def caption_cells(adata: AnnData, caption_key: str | None) -> tuple[str, np.ndarray]:
    caption_key = caption_column(adata, caption_key)
    col = adata.obs[caption_key]
    if isinstance(col.dtype, pd.CategoricalDtype):  # one check per category, not per cell
        good = [isinstance(t, str) and bool(t.strip()) for t in col.cat.categories]
        ok = np.array([*good, False], dtype=bool)[col.cat.codes.to_numpy()]  # code -1 (missing): the last, False
    else:
        ok = np.array([isinstance(t, str) and bool(t.strip()) for t in col.astype(object).to_numpy()], dtype=bool)
    if not ok.any():
        raise ValueError(f"adata.obs[{caption_key!r}] holds no non-empty captions.")
    return caption_key, ok


def negative_labels(adata: AnnData, caption_key: str, captions: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """The label of each cell that a negative caption must differ from (``loss="triplet"`` / ``"contrastive"``).

    As in :func:`mmcontext.pp.build_dataset`: the cell type column (:func:`mmcontext.pp._captions.cell_type_column`),
    a cell without one labelled by its own caption; without such a column, or with fewer than two labels among the
    training cells, each caption is its own label (a negative is then any other caption).
    """
    from ..pp._captions import cell_type_column

    texts = np.asarray([str(c) for c in captions], dtype=object)
    column = cell_type_column(adata, caption_key)
    if column is None or column == caption_key:
        return texts
    values = adata.obs[column]
    labels = np.where(values.isna().to_numpy(), texts, values.astype(str).to_numpy()).astype(object)
    return labels if len(set(labels[ok])) >= 2 else texts


def space_from_prepare(adata: AnnData, key: str) -> dict[str, Any]:
    prep = find_record(adata, "prepare")
    if prep.get("init_key") != key:
        return {}
    keys = ("method", "n_components", "layer")
    return {k: prep[k] for k in keys if k in prep and not isinstance(prep[k], np.ndarray)}


def fit_model_calibration(model: MMContextEncoder, evaluator, train_captions) -> dict[str, Any]:
    """Label-probability calibration on the validation cells (``{}`` without them); see ``tl._calibration``."""
    if evaluator is None:
        return {}
    from ._calibration import fit_calibration

    if hasattr(train_captions, "column_names"):  # a training Dataset: its (positive) caption column
        ds = train_captions
        train_captions = (
            ds["caption"]
            if "label" not in ds.column_names
            else [c for c, y in zip(ds["caption"], ds["label"], strict=True) if y == 1]
        )
    return fit_calibration(model, evaluator.cells, evaluator.captions, train_captions)


def use_caption_table(model: MMContextEncoder, ds_in, pairs_ds) -> bool:
    """Whether training reads captions from a table computed once (cells from ``adata``, the text tower frozen)."""
    from ..training._text_cache import frozen_prefix

    return ds_in is None and pairs_ds is None and bool(frozen_prefix(model))


def validation_evaluator(eval_ds):
    """Cell -> caption retrieval on the validation split (matching pairs only), or None without one.

    ``eval_ds``: a Dataset or a dict of columns (``cell``, ``caption``, optionally ``label``).
    """
    if eval_ds is None or not len(eval_ds["cell"]):
        return None
    from ..models._evaluator import CellCaptionEvaluator

    cells, texts = list(eval_ds["cell"]), list(eval_ds["caption"])
    if "label" in (eval_ds.column_names if hasattr(eval_ds, "column_names") else eval_ds):  # pairs: matching ones
        keep = [i for i, y in enumerate(eval_ds["label"]) if y == 1]
        cells, texts = [cells[i] for i in keep], [texts[i] for i in keep]
    return CellCaptionEvaluator(cells, texts) if cells else None
