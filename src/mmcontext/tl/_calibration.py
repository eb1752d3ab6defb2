"""Label probabilities calibrated on the validation cells that training held out.

A cell's probability for label ``l`` is ``weight * softmax(scale * scores)_l + (1 - weight) * prior_l``:
``scale`` turns cosine scores into a softmax that is neither over- nor under-confident on cells the model never
trained on, and ``weight`` says how much the cell's scores tell beyond how often each caption was trained on
(``prior``). Both are fitted by maximum likelihood on the validation cells' own captions. A model that learned
real structure gets ``weight`` near 1 and its labels follow the scores; one whose captions carry no information
about the cells (e.g. shuffled) gets ``weight`` near 0 and predicts the most frequent training caption, as any
classifier without information should.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ..models import MMContextEncoder

#: Most distinct training captions whose frequencies are stored with the model and compete in the fit
#: (the rest count as unseen).
MAX_PRIOR_CAPTIONS = 10_000
#: Most validation cells the fit reads (a fixed random subset beyond that: atlases stay cheap to calibrate).
MAX_CALIBRATION_CELLS = 2_000
#: The fitted softmax scale stays in [1e-3, 1e3] (it is undetermined when ``weight`` is 0).
MAX_LOG_SCALE = np.log(1e3)


def softmax_rows(z: np.ndarray) -> np.ndarray:
    """Softmax of each row of ``z`` (shifted by the row maximum, so large logits do not overflow)."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _mixture(scores: np.ndarray, scale: float, weight: float, prior: np.ndarray) -> np.ndarray:
    return weight * softmax_rows(np.float64(scale) * scores) + (1.0 - weight) * prior[None, :]


def fit_calibration(
    model: MMContextEncoder, cells: Sequence[Any], captions: Sequence[str], train_captions: Sequence[str]
) -> dict[str, Any]:
    """Fit ``scale`` and ``weight`` on validation ``cells`` (references or vectors) and their ``captions``.

    The candidates are the distinct captions of training and validation cells; ``prior`` is each one's share of
    the training cells (plus half a cell, so validation-only captions are possible). Returns the dict stored in
    :attr:`MMContextEncoder.calibration`, empty without validation cells.
    """
    from scipy.optimize import minimize

    if not len(cells):
        return {}
    if len(cells) > MAX_CALIBRATION_CELLS:
        keep = np.sort(np.random.default_rng(0).choice(len(cells), MAX_CALIBRATION_CELLS, replace=False))
        cells, captions = [cells[i] for i in keep], [captions[i] for i in keep]
    frequent = pd.Series(np.asarray(train_captions, dtype=object)).astype(str).value_counts()[:MAX_PRIOR_CAPTIONS]
    counts = dict(zip(frequent.index, frequent.to_numpy().tolist(), strict=True))
    candidates = sorted(set(counts) | {str(c) for c in captions})
    index = {c: i for i, c in enumerate(candidates)}
    truth = np.array([index[str(c)] for c in captions])
    prior = np.array([counts.get(c, 0) + 0.5 for c in candidates], dtype=np.float64)
    prior /= prior.sum()
    opts = {"convert_to_numpy": True, "show_progress_bar": False, "normalize_embeddings": True}
    from ..models._evaluator import encode_cell_inputs

    scores = encode_cell_inputs(model, cells) @ model.encode(candidates, task="text", **opts).T
    rows = np.arange(len(truth))

    def unpack(params: np.ndarray) -> tuple[float, float]:  # scale in [1e-3, 1e3] (free when weight is 0)
        return float(np.exp(np.clip(params[0], -MAX_LOG_SCALE, MAX_LOG_SCALE))), float(1.0 / (1.0 + np.exp(-params[1])))

    def nll(params: np.ndarray) -> float:
        scale, weight = unpack(params)
        return float(-np.log(np.maximum(_mixture(scores, scale, weight, prior)[rows, truth], 1e-300)).mean())

    fit = minimize(
        nll,
        x0=np.array([np.log(20.0), 2.0]),
        method="Nelder-Mead",
        options={"xatol": 1e-4, "fatol": 1e-7, "maxiter": 2000},
    )
    scale, weight = unpack(fit.x)
    return {
        "scale": scale,
        "weight": weight,
        "prior": dict(counts),  # most frequent first
        "n_cells": len(truth),
        "n_captions": len(candidates),
        "nll": float(fit.fun),
        "nll_prior_only": float(-np.log(prior[truth]).mean()),
    }


def label_prior(label_texts: Sequence[Sequence[str]], calibration: dict[str, Any]) -> np.ndarray:
    """Each label's prior: how many training cells had one of its texts as caption, normalised over the labels.

    Labels none of whose texts was a training caption get the mean of the others' (uniform when none was).
    """
    counts = calibration.get("prior", {})
    found = np.array([sum(counts.get(t, 0) for t in set(texts)) for texts in label_texts], dtype=np.float64)
    if not (found > 0).any():
        return np.full(len(found), 1.0 / len(found))
    found[found == 0] = found[found > 0].mean()
    return found / found.sum()


def label_probabilities(
    scores: np.ndarray, label_texts: Sequence[Sequence[str]], calibration: dict[str, Any]
) -> np.ndarray | None:
    """Calibrated ``p(label | cell)`` from cosine ``scores`` (cells x labels); None for a model without calibration."""
    if not calibration:
        return None
    prior = label_prior(label_texts, calibration)
    return _mixture(scores.astype(np.float64), calibration["scale"], calibration["weight"], prior).astype(np.float32)
