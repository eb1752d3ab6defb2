"""Every touch point on another library's private API still exists and behaves as mmcontext relies on."""

from __future__ import annotations

import importlib

import anndata as ad
import numpy as np
import pytest
import torch

from mmcontext import _compat


@pytest.mark.parametrize("module,cls,method", _compat.PRIVATE_OVERRIDES, ids=lambda v: str(v))
def test_overridden_private_methods_exist(module, cls, method):
    klass = getattr(importlib.import_module(module), cls)
    assert callable(getattr(klass, method, None)), f"{module}.{cls}.{method} is gone; mmcontext overrides it"


class _Double(torch.nn.Module):
    def forward(self, features):
        return {"sentence_embedding": features["x"] * 2}


def test_embed_columns_embeds_each_column():
    cols = [{"x": torch.arange(6.0).reshape(2, 3)}, {"x": torch.ones(2, 3)}, {"x": torch.zeros(2, 3)}]
    out = _compat.embed_columns(_Double(), cols)
    assert len(out) == 3
    for got, col in zip(out, cols, strict=True):
        assert torch.equal(got, col["x"] * 2)


def test_read_only_backed_is_recognised(tmp_path):
    path = tmp_path / "a.h5ad"
    ad.AnnData(np.ones((3, 2), dtype=np.float32)).write_h5ad(path)
    assert not _compat.is_read_only_backed(ad.read_h5ad(path))
    for mode, read_only in (("r", True), ("r+", False)):
        backed = ad.read_h5ad(path, backed=mode)
        try:
            assert _compat.is_read_only_backed(backed) is read_only
        finally:
            backed.file.close()
