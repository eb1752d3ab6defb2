"""The bundled example: scanpy's pbmc68k_reduced (700 PBMCs, 10 labels), with a fixed split and queries."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from anndata import AnnData

#: ``obs`` column with the cell type labels of pbmc68k_reduced.
PBMC_LABEL_KEY = "bulk_labels"

#: Queries whose words appear in no label name, with the labels each should find.
PBMC_QUERIES: dict[str, list[str]] = {
    "monocytes": ["CD14+ Monocyte"],
    "B lymphocytes": ["CD19+ B"],
    "natural killer cells": ["CD56+ NK"],
    "dendritic cells": ["Dendritic"],
    "regulatory T cells": ["CD4+/CD25 T Reg"],
    "hematopoietic stem and progenitor cells": ["CD34+"],
    "cytotoxic T cells": ["CD8+ Cytotoxic T", "CD8+/CD45RA+ Naive Cytotoxic"],
    "memory T helper cells": ["CD4+/CD45RO+ Memory"],
    "T cells": [
        "CD4+/CD25 T Reg",
        "CD8+ Cytotoxic T",
        "CD4+/CD45RO+ Memory",
        "CD8+/CD45RA+ Naive Cytotoxic",
        "CD4+/CD45RA+/CD25- Naive T",
    ],
    "antibody-producing lineage cells": ["CD19+ B"],
    "cytotoxic lymphocytes": ["CD56+ NK", "CD8+ Cytotoxic T", "CD8+/CD45RA+ Naive Cytotoxic"],
    "myeloid cells": ["CD14+ Monocyte", "Dendritic"],
}


def pbmc68k_reduced() -> AnnData:
    """Load scanpy's ``pbmc68k_reduced`` (shipped with scanpy, offline): 700 PBMCs, labels in ``obs['bulk_labels']``.

    ``X`` holds the log-normalised expression of its 765 genes (scanpy's ``adata.raw``), the input
    :func:`mmcontext.pp.prepare` expects; scanpy's scaled and regressed ``X`` is kept in ``layers['scaled']``.
    Everything else (``obsm['X_pca']``, ``obsm['X_umap']``, the kNN graph, ``raw``) is as scanpy ships it.
    """
    import scanpy as sc
    from scipy import sparse

    adata = sc.datasets.pbmc68k_reduced()
    if list(adata.raw.var_names) != list(adata.var_names):  # scanpy ships both with the same 765 genes
        raise RuntimeError("scanpy's pbmc68k_reduced changed: raw and X no longer hold the same genes.")
    adata.layers["scaled"] = adata.X
    lognorm = adata.raw.X
    adata.X = (lognorm.toarray() if sparse.issparse(lognorm) else np.asarray(lognorm)).astype(np.float32)
    return adata


def pbmc_split(adata: AnnData, *, test_size: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The stratified train/test split used throughout the docs and benchmarks (indices into ``adata``)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(adata.n_obs)
    train, test = train_test_split(idx, test_size=test_size, random_state=seed, stratify=adata.obs[PBMC_LABEL_KEY])
    return np.sort(train), np.sort(test)
