"""The texts that stand for labels and queries, and their embeddings (shared by query and annotate)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._validation import check_texts, get_obs_column

if TYPE_CHECKING:
    from anndata import AnnData

    from ..models import MMContextEncoder

#: Default label-text templates: the caption a cell of that type was trained with (``{caption}``).
#: Other fields: ``{label}`` (the label as given) and ``{name}`` (its Cell Ontology name, else the label).
DEFAULT_TEMPLATES: tuple[str, ...] = ("{caption}",)

_CL_ID = re.compile(r"^\s*CL[:_]\d{7}\s*$", re.IGNORECASE)


def resolve_labels(adata: AnnData, labels: str | Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Candidate label names, and ``{name: CL id}`` for those given as CL ids (named by their CL name)."""
    if isinstance(labels, str) and not _CL_ID.match(labels):
        col = get_obs_column(adata, labels)
        labels = [str(c) for c in (col.cat.categories if hasattr(col, "cat") else pd.unique(col.dropna()))]
    labels = check_texts(labels, what="labels")
    ids: dict[str, str] = {}
    if any(_CL_ID.match(label) for label in labels):
        from ..ontology import CellOntology

        onto = CellOntology.load()
        names = []
        for label in labels:
            if _CL_ID.match(label):
                term = onto.term(label)
                ids[term.name] = term.id
                names.append(term.name)
            else:
                names.append(label)
        labels = names
    if len(set(labels)) != len(labels):
        dup = sorted({lab for lab in labels if labels.count(lab) > 1})
        raise ValueError(f"labels must be distinct; {dup!r} appear more than once (CL ids count by their name).")
    return labels, ids


def label_texts(
    labels: Sequence[str], *, templates: Sequence[str] | None = None, ontology: bool = True
) -> list[list[str]]:
    """The texts that stand for each label, one per template.

    Parameters
    ----------
    labels
        Label names.
    templates
        Format strings with the fields ``{caption}`` (the caption :func:`mmcontext.pp.captions` gives a cell of
        that type), ``{label}`` and ``{name}`` (the Cell Ontology name, else the label). Default
        :data:`DEFAULT_TEMPLATES`.
    ontology
        Build ``{caption}`` and ``{name}`` with the Cell Ontology.

    Returns
    -------
    One list of texts per label (duplicates within a label removed).

    """
    templates = list(templates) if templates is not None else list(DEFAULT_TEMPLATES)
    if not templates:
        raise ValueError("templates is empty; pass at least one format string such as '{caption}' or 'a {label}'.")
    for t in templates:
        try:
            t.format(caption="", label="", name="")
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(
                f"Template {t!r} is not a format string over {{caption}}, {{label}}, {{name}} ({err!r})."
            ) from None
    caps = [""] * len(labels)
    if any("{caption}" in t for t in templates):
        from ..pp._captions import caption_texts

        obs = pd.DataFrame({"cell_type": list(labels)})
        caps = list(caption_texts(obs, {"cell_type": "cell_type"}, ontology=ontology))
    names = list(labels)
    if ontology and any("{name}" in t for t in templates):
        from ..ontology import CellOntology

        onto = CellOntology.load()
        names = [(term.name if (term := onto.match(label)) is not None else label) for label in labels]
    out = []
    for label, cap, name in zip(labels, caps, names, strict=True):
        out.append(list(dict.fromkeys(t.format(caption=cap, label=label, name=name) for t in templates)))
    return out


def subtype_map(labels: Sequence[str], subtypes: Sequence[str]) -> dict[str, list[str]]:
    """Which ``subtypes`` each label covers by the Cell Ontology (the subtype itself, or a CL descendant).

    Parameters
    ----------
    labels
        Broad candidate labels, e.g. ``["T cell", "myeloid cell"]``.
    subtypes
        Finer cell type names, e.g. the labels a model was trained on.

    Returns
    -------
    ``{label: [subtypes it covers]}``; labels or subtypes that match no CL term cover only an identical name.

    """
    from ..ontology import CellOntology

    onto = CellOntology.load()
    sub_terms = {s: onto.match(s) for s in subtypes}
    out: dict[str, list[str]] = {}
    for label in labels:
        term = onto.match(label)
        below = set(onto.descendants(term.id)) | {term.id} if term is not None else set()
        out[label] = [s for s, t in sub_terms.items() if s == label or (t is not None and t.id in below)]
    return out


#: Smallest Cell Ontology match confidence at which :func:`query` phrases a query as a caption
#: (exact names, synonyms and CL ids score 1; loose matches such as "proliferating cells" -> "cycling T cell" less).
EXPAND_MIN_SCORE = 0.9


def query_texts(queries: list[str], *, expand: str | None) -> list[list[str]]:
    """The texts whose mean embedding stands for each query: its caption phrasing for a CL term, else itself."""
    if expand is None:
        return [[q] for q in queries]
    if expand != "ontology":
        raise ValueError(f"expand={expand!r} is not one of 'ontology', None.")
    from ..ontology import CellOntology

    onto = CellOntology.load()
    matched = [onto.match(q, min_score=EXPAND_MIN_SCORE) is not None for q in queries]
    captions = label_texts([q for q, m in zip(queries, matched, strict=True) if m]) if any(matched) else []
    it = iter(captions)
    return [next(it) if m else [q] for q, m in zip(queries, matched, strict=True)]


def text_embeddings(model: MMContextEncoder, texts: list[list[str]]) -> np.ndarray:
    """One unit vector per group of texts: the normalised mean of their embeddings (one encode call)."""
    flat = [t for group in texts for t in group]
    emb = model.encode_text(flat)
    out, start = [], 0
    for group in texts:
        mean = emb[start : start + len(group)].mean(axis=0)
        out.append(mean / max(np.linalg.norm(mean), 1e-12))
        start += len(group)
    return np.stack(out).astype(np.float32)
