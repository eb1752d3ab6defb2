"""The benchmarks' shared data: pbmc68k_reduced prepared with ontology captions, split as in the end-to-end issue."""

from __future__ import annotations

from types import SimpleNamespace

import mmcontext as mmc
from mmcontext.datasets import PBMC_LABEL_KEY, pbmc_split


def pbmc_train_test() -> SimpleNamespace:
    """``adata`` (prepared), ``train`` / ``test`` copies and their indices ``tr`` / ``te``, the test ``truth``
    labels and the label vocabulary ``labels`` (``bulk_labels`` categories)."""
    adata = mmc.datasets.pbmc68k_reduced()
    mmc.pp.prepare(adata, caption_keys={"cell_type": PBMC_LABEL_KEY})
    tr, te = pbmc_split(adata)
    test = adata[te].copy()
    return SimpleNamespace(
        adata=adata,
        tr=tr,
        te=te,
        train=adata[tr].copy(),
        test=test,
        truth=test.obs[PBMC_LABEL_KEY].astype(str).to_numpy(),
        labels=list(adata.obs[PBMC_LABEL_KEY].cat.categories),
    )
