"""The Cell Ontology (CL) shipped with ``cellxgene-ontology-guide``: loading and look-ups.

The ontology is read from the files shipped inside :mod:`cellxgene_ontology_guide`, so nothing is downloaded.
:class:`CellOntology` holds the terms and their ancestry; the free-text matcher (:mod:`._matcher`), the caption
phrasing (:mod:`._phrasing`) and the text pairs (:mod:`._pairs`) are mixed in from their own modules.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import defaultdict

from ._matcher import LexicalMatcher
from ._pairs import TextPairs
from ._phrasing import CaptionPhrasing
from ._term import GENERIC_ANCESTORS, OntologyTerm
from ._tokens import _ID_RE

logger = logging.getLogger("mmcontext")


class CellOntology(LexicalMatcher, CaptionPhrasing, TextPairs):
    """The Cell Ontology shipped with ``cellxgene-ontology-guide``, with a lexical matcher.

    Build it with :meth:`CellOntology.load` (cached), not directly.

    Parameters
    ----------
    terms
        Raw term records keyed by CL id, as returned by
        ``cellxgene_ontology_guide.supported_versions.CXGSchema.ontology("CL")``.
    version
        Version string of the CL release, e.g. ``"v2026-03-26"``.

    Examples
    --------
    >>> cl = CellOntology.load()
    >>> cl.match("NK cells").name
    'natural killer cell'

    """

    def __init__(self, terms: dict[str, dict], version: str = "unknown") -> None:
        self._raw = terms
        self.version = version
        self._term_cache: dict[str, OntologyTerm] = {}
        # reverse of the (transitive) ancestor map: ancestor -> [(distance, descendant)]
        self._descendants: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for term_id, rec in terms.items():
            if rec.get("deprecated", False):
                continue
            for anc, dist in rec.get("ancestors", {}).items():
                self._descendants[anc].append((dist, term_id))
        for lst in self._descendants.values():
            lst.sort()
        self._build_matcher(terms, _curated_terms())

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls) -> CellOntology:
        """Load the newest CL release shipped with ``cellxgene-ontology-guide``.

        The result is cached: every call returns the same object.

        Returns
        -------
        The shared :class:`CellOntology`.

        Examples
        --------
        >>> cl = CellOntology.load()
        >>> cl.term("CL:0000236").name
        'B cell'

        """
        return _load_default()

    # ------------------------------------------------------------------ lookups
    def __len__(self) -> int:
        return sum(1 for rec in self._raw.values() if not rec.get("deprecated", False))

    def __contains__(self, term_id: object) -> bool:
        return isinstance(term_id, str) and self._normalise_id(term_id) in self._raw

    def __repr__(self) -> str:
        return f"CellOntology(version={self.version!r}, n_terms={len(self)})"

    @staticmethod
    def _normalise_id(term_id: str) -> str:
        match = _ID_RE.fullmatch(term_id.strip())
        return f"CL:{match.group(1)}" if match else term_id.strip()

    def term(self, term_id: str) -> OntologyTerm:
        """Return the term with the given CL id.

        Parameters
        ----------
        term_id
            A CL id, ``"CL:0000623"`` (``"CL_0000623"`` is accepted too).

        Returns
        -------
        The :class:`OntologyTerm`, with ``score=1.0``.

        Raises
        ------
        KeyError
            If the id is not in this CL release.

        Examples
        --------
        >>> CellOntology.load().term("CL:0000623").name
        'natural killer cell'

        """
        key = self._normalise_id(term_id) if isinstance(term_id, str) else term_id
        if key not in self._raw:
            raise KeyError(
                f"{term_id!r} is not a term of the Cell Ontology {self.version}; pass an id like 'CL:0000623', "
                "or use `CellOntology.match()` for a free-text cell type name."
            )
        if key not in self._term_cache:
            rec = self._raw[key]
            names = tuple(self._raw[a]["label"] for a in self._ranked_ancestors(key))
            self._term_cache[key] = OntologyTerm(
                id=key,
                name=rec["label"],
                synonyms=tuple(rec.get("synonyms", ())),
                definition=rec.get("description") or None,
                ancestors=names,
                score=1.0,
            )
        return self._term_cache[key]

    def _scored(self, term_id: str, score: float) -> OntologyTerm:
        base = self.term(term_id)
        return OntologyTerm(base.id, base.name, base.synonyms, base.definition, base.ancestors, float(score))

    def descendants(self, term_id: str) -> list[str]:
        """Return the ids of all (non-obsolete) descendants of a term, nearest first.

        Parameters
        ----------
        term_id
            A CL id.

        Returns
        -------
        Descendant ids, sorted by distance then id; the term itself is not included.

        Examples
        --------
        >>> "CL:0000625" in CellOntology.load().descendants("CL:0000084")
        True

        """
        key = self.term(term_id).id
        return [d for _, d in self._descendants.get(key, [])]

    def ancestors(self, term_id: str) -> list[str]:
        """Return the ids of a term's ancestors, nearest first, without the generic ones.

        The ids behind :attr:`OntologyTerm.ancestors` (which holds names): ancestors named in
        :data:`GENERIC_ANCESTORS` (``"cell"``, ``"somatic cell"``, ...) are left out.

        Parameters
        ----------
        term_id
            A CL id.

        Returns
        -------
        Ancestor ids, sorted by distance then name; the term itself is not included.

        Examples
        --------
        >>> "CL:0000084" in CellOntology.load().ancestors("CL:0000625")
        True

        """
        return self._ranked_ancestors(self.term(term_id).id)

    def _ranked_ancestors(self, key: str) -> list[str]:
        """Ancestor ids of a known term id, by distance then name, without :data:`GENERIC_ANCESTORS`."""
        ancestors = self._raw[key].get("ancestors", {})
        ranked = sorted((d, self._raw[a]["label"], a) for a, d in ancestors.items() if a in self._raw)
        return [a for _, name, a in ranked if name not in GENERIC_ANCESTORS]

    def _informative_ancestors(self, term: OntologyTerm) -> list[str]:
        """Ancestor names without qualified variants of a near ancestor ("group 1 innate lymphoid cell")."""
        dist = {self._raw[a]["label"]: d for a, d in self._raw[term.id].get("ancestors", {}).items() if a in self._raw}
        return [
            a
            for a in term.ancestors
            if not any(b != a and b in a and dist.get(b, 99) - dist.get(a, 0) <= 1 for b in term.ancestors)
        ]


def _curated_terms() -> frozenset[str]:
    """CL ids in cellxgene's curated high-level cell class / subclass lists."""
    try:
        from cellxgene_ontology_guide.curated_ontology_term_lists import (
            CuratedOntologyTermList,
            get_curated_ontology_term_list,
        )

        ids: set[str] = set()
        for name in ("CELL_CLASS", "CELL_SUBCLASS"):
            ids.update(get_curated_ontology_term_list(getattr(CuratedOntologyTermList, name)))
        return frozenset(ids)
    except (ImportError, AttributeError, OSError, ValueError) as err:  # optional refinement only
        logger.debug("curated CL lists unavailable (%s); ranking ties by descendants only", err)
        return frozenset()


@functools.lru_cache(maxsize=1)
def _load_default() -> CellOntology:
    from cellxgene_ontology_guide.ontology_parser import OntologyParser

    start = time.perf_counter()
    schema = OntologyParser().cxg_schema
    version = str(schema.supported_ontologies["CL"]["version"])
    cl = CellOntology(schema.ontology("CL"), version=version)
    logger.debug("loaded Cell Ontology %s (%d terms) in %.2fs", version, len(cl), time.perf_counter() - start)
    return cl
