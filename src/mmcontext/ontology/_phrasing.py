"""Caption phrasing from the ontology: a short description of a label, its lineage, and a caption's phrases.

:class:`CaptionPhrasing` is a mixin of :class:`~mmcontext.ontology.CellOntology` (it calls ``self.match``);
:func:`caption_phrases` splits a caption back into its phrases (the reranker trains on them).
"""

from __future__ import annotations

import re

#: Hematopoietic lineages named in captions, by the CL terms whose descendants belong to them. CL does not
#: place dendritic cells under "myeloid cell", so the mononuclear phagocytes are listed too.
LINEAGES: dict[str, tuple[str, ...]] = {
    "erythroid": ("CL:0000764",),  # erythroid lineage cell (CL files it under myeloid cell: checked first)
    "lymphoid": ("CL:0000542", "CL:0000838"),  # lymphocyte, lymphocyte of B lineage
    "myeloid": ("CL:0000763", "CL:0000766", "CL:0000113"),  # myeloid cell, myeloid leukocyte, mononuclear phagocyte
}

_SPLIT = re.compile(r"[,.;:()]|\ba kind of\b|\band\b", flags=re.IGNORECASE)


def caption_phrases(caption: str) -> list[str]:
    """Short phrases of a caption: its comma/``and``/``a kind of`` separated parts without leading articles.

    ``"A CD14+ Monocyte, a kind of monocyte and mononuclear phagocyte."`` ->
    ``["CD14+ Monocyte", "monocyte", "mononuclear phagocyte"]``.
    """
    out = []
    for part in _SPLIT.split(caption):
        part = re.sub(r"^(a|an|the)\s+", "", part.strip(), flags=re.IGNORECASE).strip()
        if len(part) >= 3 and re.search("[A-Za-z]", part) and part not in out:
            out.append(part)
    return out


def _first_sentence(text: str) -> str:
    match = re.match(r"(.+?[.!?])(\s+[A-Z(]|$)", text.strip(), flags=re.DOTALL)
    return (match.group(1) if match else text).strip()


def _article(phrase: str) -> str:
    word = phrase.split()[0] if phrase.split() else phrase
    if word.isupper() and len(word) > 1:  # acronyms: "an NK cell", "a CD4-positive ..."
        return "an" if word[0] in "AEFHILMNORSX" else "a"
    return "an" if word[:1].lower() in "aeiou" else "a"


class CaptionPhrasing:
    """:meth:`describe` and :meth:`lineage` (mixed into ``CellOntology``)."""

    _raw: dict[str, dict]

    def describe(self, label: str, *, detail: str = "full") -> str:
        """Return a short phrase describing a cell type label, for captions.

        Parameters
        ----------
        label
            The cell type name as it appears in the data.
        detail
            ``"name"``: label and CL name; ``"short"``: also a synonym and up to two informative
            ancestors; ``"full"``: also the first sentence of the CL definition.

        Returns
        -------
        A phrase of at most about 60 words, or ``label`` unchanged when it matches no term.

        Examples
        --------
        >>> CellOntology.load().describe("NK", detail="short")
        'NK, a natural killer cell (NK cell), a kind of innate lymphoid cell and lymphocyte'

        """
        if detail not in {"name", "short", "full"}:
            raise ValueError(f"detail={detail!r} is not one of 'name', 'short', 'full'.")
        term = self.match(label)
        if term is None:
            return label
        same = label.strip().lower() == term.name.lower()
        text = label if same else f"{label}, {_article(term.name)} {term.name}"
        if detail == "name":
            return text
        low = {label.strip().lower(), term.name.lower()}
        short_syns = [s for s in term.synonyms if s.lower() not in low and len(s.split()) <= 3]
        if short_syns:
            text += f" ({min(short_syns, key=len)})"
        ancestors = self._informative_ancestors(term)[:2]
        if ancestors:
            text += f", a kind of {' and '.join(ancestors)}"
        if detail == "full" and term.definition:
            budget = 60 - len(text.split())
            words = _first_sentence(term.definition).split()
            if budget >= 5:
                sentence = " ".join(words[:budget])
                if len(words) > budget:
                    sentence = sentence.rstrip(",;:") + " ..."
                text += f". {sentence}"
        return text

    def lineage(self, label: str) -> str | None:
        """Return the hematopoietic lineage of a cell type label (``"myeloid"``, ``"lymphoid"``, ``"erythroid"``).

        Parameters
        ----------
        label
            A cell type name or CL id.

        Returns
        -------
        The first lineage in :data:`LINEAGES` whose root terms include the matched term or one of its
        ancestors, or `None` (no match, or no lineage).

        Examples
        --------
        >>> CellOntology.load().lineage("Dendritic")
        'myeloid'

        """
        term = self.match(label)
        if term is None:
            return None
        ancestors = set(self._raw[term.id].get("ancestors", {})) | {term.id}
        for name, roots in LINEAGES.items():
            if ancestors.intersection(roots):
                return name
        return None
