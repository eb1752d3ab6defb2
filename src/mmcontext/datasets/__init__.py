"""Example data: the bundled PBMC set with its split and queries."""

from ._pbmc import PBMC_LABEL_KEY, PBMC_QUERIES, pbmc68k_reduced, pbmc_split

__all__ = ["PBMC_LABEL_KEY", "PBMC_QUERIES", "pbmc68k_reduced", "pbmc_split"]
