"""Shared fixtures: real PBMC data, tiny synthetic AnnData, and one trained model per session."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import mmcontext as mmc

mmc.settings.progress = False


@pytest.fixture
def pbmc():
    """pbmc68k_reduced, fresh per test (700 cells, 765 genes, labels in obs['bulk_labels'])."""
    return mmc.datasets.pbmc68k_reduced()


@pytest.fixture(scope="session")
def pbmc_split():
    """Prepared pbmc68k_reduced split into train/test AnnData (the split of the docs and benchmarks)."""
    adata = mmc.datasets.pbmc68k_reduced()
    mmc.pp.prepare(adata, caption_keys={"cell_type": "bulk_labels"})
    train, test = mmc.datasets.pbmc_split(adata)
    return adata[train].copy(), adata[test].copy()


@pytest.fixture(scope="session")
def trained_model(pbmc_split):
    """A model trained once per session on the PBMC training cells (read-only: copy before changing it)."""
    train, _ = pbmc_split
    return mmc.tl.train(train, epochs=10, seed=0)


def make_adata(n_obs: int = 40, n_vars: int = 30, *, seed: int = 0, n_types: int = 3) -> ad.AnnData:
    """A tiny synthetic AnnData with separable cell types and metadata columns."""
    rng = np.random.default_rng(seed)
    types = np.array(["B cell", "T cell", "monocyte", "NK cell", "dendritic cell"][:n_types])
    labels = types[np.arange(n_obs) % n_types]
    centers = rng.normal(0, 3, size=(n_types, n_vars))
    X = centers[np.arange(n_obs) % n_types] + rng.normal(size=(n_obs, n_vars))
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(labels),
            "tissue": pd.Categorical(rng.choice(["blood", "lung"], n_obs)),
            "donor_id": pd.Categorical(rng.choice(["d1", "d2", "d3"], n_obs)),
        },
        index=[f"cell{i}" for i in range(n_obs)],
    )
    var = pd.DataFrame(index=[f"gene{j}" for j in range(n_vars)])
    return ad.AnnData(X.astype(np.float32), obs=obs, var=var)


@pytest.fixture
def tiny():
    """A tiny synthetic AnnData (40 cells x 30 genes, 3 types)."""
    return make_adata()
