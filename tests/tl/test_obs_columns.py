"""tl._obs.write_obs_columns: a call's columns join obs at once, replacing or dropping earlier ones."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from mmcontext.tl._obs import write_obs_columns


def _adata(n: int = 50) -> ad.AnnData:
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical(["a", "b"] * (n // 2)), "mito": np.linspace(0, 1, n, dtype=np.float32)},
        index=[f"c{i}" for i in range(n)],
    )
    return ad.AnnData(obs=obs)


def test_columns_replace_same_names_and_keep_the_rest():
    adata = _adata()
    first = np.arange(100, dtype=np.float32).reshape(50, 2)
    write_obs_columns(adata, ["s1", "s2"], first)
    write_obs_columns(adata, ["s2", "s3"], -first, drop=["s1", "not_there"])
    assert list(adata.obs.columns) == ["cell_type", "mito", "s2", "s3"]
    np.testing.assert_array_equal(adata.obs["s2"].to_numpy(), -first[:, 0])
    np.testing.assert_array_equal(adata.obs["s3"].to_numpy(), -first[:, 1])
    assert adata.obs["s2"].dtype == np.float32 and adata.obs["cell_type"].dtype == "category"
    np.testing.assert_array_equal(adata.obs["mito"].to_numpy(), np.linspace(0, 1, 50, dtype=np.float32))


def test_many_columns_stay_one_block_without_a_fragmentation_warning(recwarn):
    adata = _adata()
    for rep in range(3):
        write_obs_columns(adata, [f"q{j}" for j in range(150)], np.full((50, 150), rep, dtype=np.float32))
    assert not [w for w in recwarn if "fragmented" in str(w.message)]
    assert adata.obs._mgr.nblocks <= 4 and adata.obs.shape == (50, 152)
    assert (adata.obs["q149"] == 2).all()


def test_a_block_without_float32_neighbours_joins_without_a_copy():
    adata = _adata()
    adata.obs = adata.obs[["cell_type"]]
    values = np.asfortranarray(np.random.default_rng(0).random((50, 3), dtype=np.float32))
    write_obs_columns(adata, ["a", "b", "c"], values)
    assert np.shares_memory(adata.obs["a"].to_numpy(), values)


def test_no_new_columns_only_drops_and_copies_nothing():
    adata = _adata()
    adata.obs = adata.obs[["cell_type"]]
    values = np.asfortranarray(np.ones((50, 2), dtype=np.float32))
    write_obs_columns(adata, ["a", "b"], values)
    obs = adata.obs
    write_obs_columns(adata, [], np.zeros((50, 0), dtype=np.float32), drop=["not_there"])
    assert adata.obs is obs  # nothing to drop: obs untouched (a concatenation would copy the float32 columns)
    write_obs_columns(adata, [], np.zeros((50, 0), dtype=np.float32), drop=["a"])
    assert list(adata.obs.columns) == ["cell_type", "b"]
    np.testing.assert_array_equal(adata.obs["b"].to_numpy(), values[:, 1])


def test_wrong_shape_names_the_shape():
    with pytest.raises(ValueError, match=r"shape \(49, 2\) for 2 obs columns of 50 cells"):
        write_obs_columns(_adata(), ["a", "b"], np.zeros((49, 2), dtype=np.float32))
