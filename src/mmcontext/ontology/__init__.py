"""The Cell Ontology, offline: look-ups, a free-text matcher, caption phrasing, text pairs, and marker genes.

Purely lexical (no torch, no sentence-transformers): labels are normalised (case, plurals, marker
notation such as ``CD14+``, common abbreviations such as ``NK`` or ``Treg``) and scored against every
CL name and synonym with an IDF-weighted cosine over tokens. :class:`MarkerTable` links terms to canonical
marker genes (shipped in ``ontology/data``), inherited down the ontology.
"""

from ._graph import CellOntology
from ._markers import MarkerSet, MarkerTable, cd_genes, name_marker_genes
from ._phrasing import LINEAGES, caption_phrases
from ._term import GENERIC_ANCESTORS, OntologyTerm

__all__ = [
    "GENERIC_ANCESTORS",
    "LINEAGES",
    "CellOntology",
    "MarkerSet",
    "MarkerTable",
    "OntologyTerm",
    "caption_phrases",
    "cd_genes",
    "name_marker_genes",
]
