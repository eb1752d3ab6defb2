"""Text-to-text training pairs for ``mmc.tl.train(text_pairs=...)``: cell type vocabulary for the text tower.

Pairs of texts that mean (nearly) the same cell type -- a Cell Ontology synonym and its term name, a
definition and its name, a name and an ancestor's name -- train the text tower with in-batch negatives
next to the cell-caption loss, through sentence-transformers' multi-dataset training (a dict of datasets,
a dict of losses, a router mapping per dataset).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._logging import logger
from ..pp._captions import cell_type_column

if TYPE_CHECKING:
    from anndata import AnnData

#: Dataset names of the multi-dataset training (they key the losses and the router mapping).
CELLS = "cells"
TEXT_PAIRS = "text_pairs"
#: Columns of the text-pair dataset: MNRL reads the first as anchor, the second as its positive.
COLUMNS = ("anchor", "positive")


def ontology_pairs(labels: Sequence[str]) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """(synonym, name), (definition, name) and (name, ancestor) pairs of the CL terms matching ``labels``.

    Each label's term is used with all its non-generic ancestors, so broad terms (``"lymphocyte"``,
    ``"myeloid leukocyte"``) get their own synonyms and definitions too.

    Returns
    -------
    The pairs, and ``{"n_terms", "n_labels_matched", "unmatched"}``.

    """
    from ..ontology import CellOntology

    onto = CellOntology.load()
    term_ids: list[str] = []
    unmatched: list[str] = []
    for label in labels:
        term = onto.match(label)
        if term is None:
            unmatched.append(label)
            continue
        term_ids.extend([term.id, *onto.ancestors(term.id)])
    if not term_ids:
        raise ValueError(
            f"text_pairs='ontology': none of the {len(labels)} cell type labels matches a Cell Ontology term "
            f"(e.g. {list(labels)[:3]!r}); pass the pairs themselves: text_pairs=[(text_a, text_b), ...]."
        )
    if unmatched:
        logger.warning(
            "text_pairs='ontology': %d cell type labels match no Cell Ontology term and add no pairs: %s",
            len(unmatched),
            unmatched[:10],
        )
    term_ids = list(dict.fromkeys(term_ids))
    pairs = onto.text_pairs(term_ids)
    return pairs, {"n_terms": len(term_ids), "n_labels_matched": len(labels) - len(unmatched), "unmatched": unmatched}


def _checked_pairs(pairs: Any, source: str) -> list[tuple[str, str]]:
    out = []
    for i, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, (Sequence, np.ndarray)) or len(pair) != 2:
            raise ValueError(f"{source}[{i}] must be a pair (text_a, text_b), got {pair!r}.")
        for text in pair:
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{source}[{i}] = {pair!r}: both items of a text pair must be non-empty strings.")
        out.append((str(pair[0]), str(pair[1])))
    return out


def build_text_pairs(
    text_pairs: Any,
    *,
    text_trainable: bool | int | str,
    adata: AnnData | None,
    caption_key: str | None,
    cells: np.ndarray | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Check ``text_pairs`` and build its training ``Dataset`` (columns ``anchor``, ``positive``).

    Parameters
    ----------
    text_pairs
        ``"ontology"``, a sequence of ``(text_a, text_b)`` pairs, or a ``datasets.Dataset`` with two text columns.
    text_trainable
        The ``text_trainable`` of the training run: the pairs need a text tower that trains.
    adata, caption_key
        The training AnnData and its caption column (for ``"ontology"``: whose cell type labels); ``caption_key=None``
        takes the cell type column recorded for any caption column.
    cells
        Boolean mask of the cells that train (those with a caption); default all.

    Returns
    -------
    The dataset, and ``{"kind", "n_pairs", ...}`` for the training provenance.

    """
    from datasets import Dataset

    from ..models._encoder import unfrozen_text_layers

    if unfrozen_text_layers(text_trainable) == 0:
        raise ValueError(
            f"text_pairs= trains the text tower, but text_trainable={text_trainable!r} freezes it. Pass "
            "text_trainable=2 (its top two layers; recommended) or text_trainable=True (all of it), or leave "
            "text_pairs=None."
        )
    if isinstance(text_pairs, str):
        if text_pairs != "ontology":
            raise ValueError(
                f"text_pairs={text_pairs!r} is not 'ontology', a list of (text_a, text_b) pairs or a "
                "datasets.Dataset with two text columns."
            )
        if adata is None:
            raise ValueError(
                "text_pairs='ontology' with dataset= needs adata= too (its cell type labels choose the "
                "ontology terms), or pass the pairs themselves: text_pairs=[(text_a, text_b), ...]."
            )
        column = cell_type_column(adata, caption_key)
        if column is None:
            raise ValueError(
                "text_pairs='ontology' needs the cell type labels behind the captions, but adata.uns['mmcontext'] "
                "records no cell type column and none was detected in adata.obs. Run `mmc.pp.prepare(adata, "
                "caption_keys={'cell_type': '<column>'})`, or pass the pairs themselves: text_pairs=[(text_a, "
                "text_b), ...]."
            )
        values = adata.obs[column]
        if cells is not None:
            values = values[np.asarray(cells, dtype=bool)]
        labels = sorted({str(v) for v in values.dropna().astype(str) if str(v).strip()})
        pairs, info = ontology_pairs(labels)
        info = {"kind": "ontology", "n_pairs": len(pairs), "cell_type_key": column, **info}
    elif isinstance(text_pairs, Dataset):
        if len(text_pairs.column_names) != 2:
            raise ValueError(f"A text_pairs Dataset needs exactly two text columns, got {text_pairs.column_names!r}.")
        a, b = text_pairs.column_names
        pairs = _checked_pairs(list(zip(text_pairs[a], text_pairs[b], strict=True)), f"text_pairs[{a!r}, {b!r}]")
        info = {"kind": "dataset", "n_pairs": len(pairs)}
    elif isinstance(text_pairs, (Sequence, np.ndarray)) and not isinstance(text_pairs, bytes):
        pairs = _checked_pairs(text_pairs, "text_pairs")
        info = {"kind": "pairs", "n_pairs": len(pairs)}
    else:
        raise ValueError(
            f"text_pairs must be 'ontology', a list of (text_a, text_b) pairs or a datasets.Dataset with "
            f"two text columns, got {type(text_pairs).__name__}."
        )
    if len(pairs) < 2:
        raise ValueError(f"text_pairs has {len(pairs)} pair(s); in-batch negatives need at least 2.")
    logger.info(
        "training the text tower on %d text pairs (%s) next to the cell-caption pairs", len(pairs), info["kind"]
    )
    anchors, positives = zip(*pairs, strict=True)
    return Dataset.from_dict({COLUMNS[0]: list(anchors), COLUMNS[1]: list(positives)}), info


def with_text_pairs(
    train_ds: Any,
    eval_ds: Any,
    router_mapping: dict[str, str],
    cell_loss: Any,
    pairs_ds: Any,
    model: Any,
    *,
    matryoshka_dims: list[int] | None = None,
) -> tuple[dict, dict | None, dict, dict]:
    """The trainer's datasets, router mapping and losses with the text pairs as a second dataset.

    The validation split holds cells only; :class:`~mmcontext.models.TextPairMNRLoss` trains the pairs
    (wrapped in ``MatryoshkaLoss`` like the cell loss when ``matryoshka_dims`` is set).
    """
    from ..models._losses import TextPairMNRLoss, matryoshka_list

    text_loss = TextPairMNRLoss(model)
    if matryoshka_dims is not None:
        from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss

        text_loss = MatryoshkaLoss(model, text_loss, matryoshka_list(matryoshka_dims, model.get_embedding_dimension()))
    return (
        {CELLS: train_ds, TEXT_PAIRS: pairs_ds},
        {CELLS: eval_ds} if eval_ds is not None else None,
        {CELLS: dict(router_mapping), TEXT_PAIRS: dict.fromkeys(COLUMNS, "text")},
        {CELLS: cell_loss, TEXT_PAIRS: text_loss},
    )
