"""Reranking: train the (cell, text) cross-encoder on an AnnData, and apply it to query / annotate scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._logging import logger
from .._provenance import record
from .._validation import check_adata, check_number, check_trained, get_obsm
from ..pp._prepare import init_key

if TYPE_CHECKING:
    from anndata import AnnData

    from ..models import CellTextReranker


def train_reranker(
    adata: AnnData,
    *,
    caption_key: str | None = None,
    use_rep: str | None = None,
    text_model: str | None = None,
    epochs: int = 8,
    n_negatives: int = 3,
    hard_negatives: float = 0.5,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    fragments: bool = True,
    max_seconds: float | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> CellTextReranker:
    """Train a cross-encoder that scores (cell, text) pairs, to rerank the bi-encoder's top hits.

    Positives are each cell with its caption (and, with ``fragments``, a random phrase of it);
    negatives pair the cell with another cell's caption or a phrase that its own caption lacks.

    Parameters
    ----------
    adata
        Annotated data matrix with an initial embedding and captions (see :func:`mmcontext.pp.prepare`).
    caption_key
        ``obs`` column of captions; default: the one :func:`~mmcontext.pp.prepare` wrote.
    use_rep
        ``obsm`` key of the initial embedding (default: the one :func:`~mmcontext.pp.prepare` recorded).
    text_model
        Sentence-transformers model whose (frozen) token states feed the cross-encoder; default the
        bundled all-MiniLM-L6-v2.
    epochs, n_negatives, batch_size, learning_rate
        Training: passes over the cells, negatives per positive, pairs per step, AdamW learning rate.
    hard_negatives
        Fraction of negative captions drawn from cell types whose cells lie close to the cell (the
        confusions the bi-encoder's top-k holds) instead of uniformly.
    fragments
        Also train on phrases of the captions (so that short queries score sensibly).
    max_seconds
        Stop training after this much wall time.
    seed
        Seed for weights, sampling and shuffling.
    **kwargs
        Shape of the model (see :class:`~mmcontext.models.CellTextReranker`).

    Returns
    -------
    The trained :class:`~mmcontext.models.CellTextReranker`; pass it as ``rerank=`` to
    :func:`mmcontext.tl.query` or :func:`mmcontext.tl.annotate`. Records the parameters in
    ``adata.uns['mmcontext']['train_reranker']``.

    Examples
    --------
    >>> reranker = mmc.tl.train_reranker(train, epochs=6)  # doctest: +SKIP
    >>> mmc.tl.annotate(test, model, "bulk_labels", rerank=reranker, top_k=3)  # doctest: +SKIP

    """
    from ..models import CellTextReranker
    from ..training._reranker import fit_reranker
    from ._train_inputs import caption_cells

    check_adata(adata, min_obs=2)
    for name, value in (("epochs", epochs), ("n_negatives", n_negatives), ("batch_size", batch_size)):
        check_number(value, what=name, integer=True, low=1)
    check_number(hard_negatives, what="hard_negatives", low=0.0, high=1.0)
    check_number(learning_rate, what="learning_rate", low=0.0, low_open=True)
    check_number(max_seconds, what="max_seconds", low=0.0, low_open=True, none=True)
    key = init_key(adata, use_rep)
    X = get_obsm(adata, key, hint=" Run `mmc.pp.prepare(adata)` or pass `use_rep=`.")
    caption_key, ok = caption_cells(adata, caption_key)
    captions = adata.obs[caption_key].astype(object).to_numpy()[ok].astype(str)
    if len(np.unique(captions)) < 2:
        raise ValueError(
            f"adata.obs[{caption_key!r}] holds fewer than 2 distinct captions; negatives need another caption."
        )
    reranker = CellTextReranker(X.shape[1], text_model=text_model, input_space={"obsm_key": key}, seed=seed, **kwargs)
    fit_reranker(
        reranker,
        X[ok],
        captions,
        epochs=epochs,
        n_negatives=n_negatives,
        hard_negatives=hard_negatives,
        batch_size=batch_size,
        learning_rate=learning_rate,
        fragments=fragments,
        max_seconds=max_seconds,
        seed=seed,
    )
    record(
        adata,
        "train_reranker",
        {
            "caption_key": caption_key,
            "use_rep": key,
            "n_train": int(ok.sum()),
            "epochs": epochs,
            "n_negatives": n_negatives,
            "hard_negatives": hard_negatives,
            "fragments": fragments,
            "seed": seed,
            "train_seconds": reranker.train_seconds,
        },
    )
    logger.info("trained a reranker on %d cells in %.1f s", int(ok.sum()), reranker.train_seconds)
    return reranker


def rerank_scores(
    adata: AnnData,
    reranker: CellTextReranker,
    texts: Sequence[str],
    scores: np.ndarray,
    *,
    top_k: int,
    axis: int,
    use_rep: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``rerank=`` hook of :func:`~mmcontext.tl.query` (``axis=0``) and :func:`~mmcontext.tl.annotate` (``axis=1``).

    Reads the cells' initial embedding (``use_rep``, else the key the reranker was trained on, else the one
    :func:`~mmcontext.pp.prepare` recorded) and returns :meth:`CellTextReranker.rerank`'s ``(scores, probs)``.
    """
    check_trained(reranker, what="rerank=", kind="CellTextReranker", fit="mmc.tl.train_reranker(adata)")
    top_k = check_number(top_k, what="top_k", integer=True, low=1)
    trained_on = reranker.input_space.get("obsm_key")
    key = use_rep or (trained_on if trained_on in adata.obsm else init_key(adata, None))
    X = get_obsm(adata, key, hint=" Pass the initial embedding the reranker was trained on as `use_rep=`.")
    if X.shape[1] != reranker.input_dim:
        raise ValueError(
            f"adata.obsm[{key!r}] has {X.shape[1]} features but the reranker expects {reranker.input_dim} "
            f"(trained on obsm[{trained_on!r}]); prepare the data in the same input space."
        )
    return reranker.rerank(X, list(texts), scores, top_k=int(top_k), axis=axis)
