"""The Cell Ontology, offline: look-ups, a free-text matcher, caption phrasing and text pairs.

Purely lexical (no torch, no sentence-transformers): labels are normalised (case, plurals, marker
notation such as ``CD14+``, common abbreviations such as ``NK`` or ``Treg``) and scored against every
CL name and synonym with an IDF-weighted cosine over tokens.
"""

from ._graph import CellOntology
from ._phrasing import LINEAGES, caption_phrases
from ._term import GENERIC_ANCESTORS, OntologyTerm

__all__ = ["GENERIC_ANCESTORS", "LINEAGES", "CellOntology", "OntologyTerm", "caption_phrases"]
