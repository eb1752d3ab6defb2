"""Cell Ontology knowledge: term look-ups and gene-grounded marker knowledge (offline)."""

from ._markers import MarkerSet, MarkerTable, cd_genes, name_marker_genes

__all__ = ["MarkerSet", "MarkerTable", "cd_genes", "name_marker_genes"]
