"""Whether a query is within reach of what a model was trained on, recorded per query in ``uns``.

A query's scores always rank the cells, even when the model never saw anything like it ("antibody-secreting cells"
in data without plasma cells). Trained cells sit next to their captions (a training caption's best cell similarity
is ~0.97 on pbmc68k_reduced), so a query's best cell similarity is about its similarity to the nearest training
caption. When that is below the least similarity any training caption has to its nearest other caption, the query
is further from what the model learned than the training captions are from one another: the model cannot answer
it, the log warns and ``uns['mmcontext']['query']['per_query']`` says so.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import numpy as np

from .._logging import logger

if TYPE_CHECKING:
    from ..models import MMContextEncoder

#: Training captions read (the most frequent first).
MAX_CAPTIONS = 200


def caption_floor(model: MMContextEncoder) -> float | None:
    """The smallest, over the model's training captions, of each caption's cosine similarity to its nearest other.

    ``None`` for a model without at least two training captions (kept with the calibration, i.e. trained with
    validation cells).
    """
    from ._texts import text_embeddings

    calibration = model.calibration or {}
    known = list(calibration.get("prior", {}))[:MAX_CAPTIONS]
    if len(known) < 2:
        return None
    cached = _FLOORS.get(model)
    if cached is not None and cached[0] == known:  # the same training captions (tl.train sets new ones)
        return cached[1]
    emb = text_embeddings(model, [[c] for c in known])
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    floor = float(sims.max(axis=1).min())
    _FLOORS[model] = (known, floor)
    return floor


#: caption_floor per model, kept while the model lives (not in the model: its config is part of its fingerprint)
_FLOORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def query_records(
    queries: list[str],
    keys: list[str],
    texts: list[list[str]],
    best: np.ndarray,
    floor: float | None,
    score: str,
) -> dict[str, dict[str, Any]]:
    """Per ``obs`` key: the query, the text(s) embedded for it, what the score is, its best similarity, ``far``."""
    out = {}
    for query, key, used, top in zip(queries, keys, texts, best, strict=True):
        far = floor is not None and float(top) < floor
        out[key] = {
            "query": query,
            "text": " | ".join(used),
            "score": score,
            "best_similarity": float(top),
            "caption_floor": float("nan") if floor is None else floor,
            "far": bool(far),
        }
    far = [(rec["query"], rec["best_similarity"]) for rec in out.values() if rec["far"]]
    if len(far) == 1:
        logger.warning(
            "query %r is far from everything the model was trained on: its best similarity to any cell is %.2f, "
            "below %.2f, the least similarity of a training caption to its nearest other caption. Its scores rank "
            "cells but do not mean they match; rephrase it with words of the training captions, or treat it as "
            "unanswerable.",
            far[0][0],
            far[0][1],
            floor,
        )
    elif far:  # one line for many, not one per query
        shown = ", ".join(f"{q!r} ({top:.2f})" for q, top in far[:3]) + (", ..." if len(far) > 3 else "")
        logger.warning(
            "%d of %d queries are far from everything the model was trained on: their best similarity to any cell "
            "is below %.2f, the least similarity of a training caption to its nearest other caption (%s). Their "
            "scores rank cells but do not mean they match; rephrase them with words of the training captions, or "
            "treat them as unanswerable ('far' in uns['mmcontext']['query']['per_query']).",
            len(far),
            len(out),
            floor,
            shown,
        )
    return out
