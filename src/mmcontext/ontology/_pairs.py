"""Text pairs from the ontology: texts that mean (nearly) the same cell type, as extra text training signal.

:class:`TextPairs` is a mixin of :class:`~mmcontext.ontology.CellOntology`.
"""

from __future__ import annotations

from collections.abc import Iterable


class TextPairs:
    """:meth:`text_pairs` (mixed into ``CellOntology``)."""

    def text_pairs(self, term_ids: Iterable[str]) -> list[tuple[str, str]]:
        """Pairs of texts that mean (nearly) the same cell type, as extra text training signal.

        Parameters
        ----------
        term_ids
            CL ids; duplicates are used once.

        Returns
        -------
        ``(synonym, name)``, ``(definition, name)`` and ``(name, ancestor name)`` pairs (the
        nearest three informative ancestors), in input order.

        Examples
        --------
        >>> ("NK cell", "natural killer cell") in CellOntology.load().text_pairs(["CL:0000623"])
        True

        """
        if isinstance(term_ids, str):
            term_ids = [term_ids]
        pairs: list[tuple[str, str]] = []
        seen: set[str] = set()
        for term_id in term_ids:
            term = self.term(term_id)
            if term.id in seen:
                continue
            seen.add(term.id)
            pairs.extend((syn, term.name) for syn in term.synonyms if syn != term.name)
            if term.definition:
                pairs.append((term.definition, term.name))
            pairs.extend((term.name, anc) for anc in self._informative_ancestors(term)[:3])
        return pairs
