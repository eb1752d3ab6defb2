from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
from conftest import make_adata

from mmcontext.cli import main


def test_cli_train_embed_query(tmp_path, capsys):
    make_adata(n_obs=60).write_h5ad(tmp_path / "in.h5ad")
    assert (
        main(
            [
                "-q",
                "train",
                str(tmp_path / "in.h5ad"),
                "--model-out",
                str(tmp_path / "model"),
                "--epochs",
                "1",
                "--batch-size",
                "16",
            ]
        )
        == 0
    )
    assert (tmp_path / "model" / "modules.json").is_file()
    assert (tmp_path / "model" / "training_history.json").is_file()
    # embed/query need the initial embedding: prepare once with the same defaults
    import mmcontext as mmc

    adata = make_adata(n_obs=60)
    mmc.pp.prepare(adata)
    adata.write_h5ad(tmp_path / "prepared.h5ad")
    assert (
        main(
            [
                "-q",
                "embed",
                str(tmp_path / "prepared.h5ad"),
                "--model",
                str(tmp_path / "model"),
                "--out",
                str(tmp_path / "emb.h5ad"),
            ]
        )
        == 0
    )
    emb = ad.read_h5ad(tmp_path / "emb.h5ad")
    assert emb.obsm["X_mmc"].shape == (60, 384)
    assert (
        main(
            [
                "-q",
                "query",
                str(tmp_path / "emb.h5ad"),
                "--model",
                str(tmp_path / "model"),
                "--text",
                "B cells",
                "--text",
                "T cells",
                "--out",
                str(tmp_path / "q.h5ad"),
            ]
        )
        == 0
    )
    q = ad.read_h5ad(tmp_path / "q.h5ad")
    assert {"mmc_b_cells", "mmc_t_cells"} <= set(q.obs.columns)
    assert np.isfinite(q.obs["mmc_b_cells"]).all()
    assert "wrote" in capsys.readouterr().out


def test_cli_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        main(["-q", "embed", str(tmp_path / "nope.h5ad"), "--model", "x", "--out", str(tmp_path / "o.h5ad")])
