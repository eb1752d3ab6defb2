"""Interrupted training: checkpoints every N steps, a run killed by SIGKILL resumes to the same weights."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import mmcontext as mmc
from mmcontext.training import _checkpoints

TESTS = Path(__file__).resolve().parents[1]
SRC = TESTS.parent / "src"
OPTS = {"epochs": 2, "batch_size": 8, "hidden_dim": 32, "n_layers": 1, "validation_split": 0.0, "seed": 3}
# 60 cells / batch 8 = 8 steps per epoch, 16 in all; checkpoints at 4, 8, 12; the child dies at step 10.
KILL_AT = 10


def _data():
    sys.path.insert(0, str(TESTS))
    from conftest import make_adata

    adata = make_adata(60, 20, seed=1)
    mmc.pp.prepare(adata, caption_keys={"cell_type": "cell_type"}, ontology=False)
    return adata


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return mmc.tl.train(_data(), output_dir=tmp_path_factory.mktemp("full") / "model", **OPTS)


def test_resume_after_kill_matches_uninterrupted(tmp_path, uninterrupted):
    full = uninterrupted
    expected = _weights(full)

    out = tmp_path / "resumed"
    child = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(TESTS)!r})
        import torch
        torch.set_num_threads({torch.get_num_threads()})  # the parent's: reductions then sum in the same order
        import mmcontext as mmc
        from mmcontext.training._trainer import MMContextTrainer
        from tests_tl_resume import _data, OPTS, KILL_AT

        step = MMContextTrainer.training_step

        def training_step(self, *args, **kwargs):
            if self.state.global_step == KILL_AT:
                os.kill(os.getpid(), signal.SIGKILL)  # a hard kill, no cleanup
            return step(self, *args, **kwargs)

        MMContextTrainer.training_step = training_step
        mmc.tl.train(_data(), output_dir={str(out)!r}, save_steps=4, **OPTS)
    """)
    shim = tmp_path / "tests_tl_resume.py"
    shim.write_text(Path(__file__).read_text())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(tmp_path)]), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    ckpts = _checkpoints.checkpoint_dir(out)
    assert sorted(os.listdir(ckpts)) == ["checkpoint-4", "checkpoint-8"]
    assert not out.exists()  # the final model was never written

    adata = _data()
    resumed = mmc.tl.train(adata, output_dir=out, save_steps=4, resume=True, **OPTS)
    assert adata.uns["mmcontext"]["train"]["resumed_from"] == "checkpoint-8"
    got = _weights(resumed)
    assert got.keys() == expected.keys()
    # bit-identical: the frozen-text caption cache encodes each caption on its own, whatever batch holds it
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), (name, (got[name] - tensor).abs().max())
    assert not os.path.exists(ckpts)  # removed once the final model is saved
    assert mmc.models.load(out).input_dim == 20
    # same embeddings from the saved folder
    X = adata.obsm["X_mmc_init"]
    np.testing.assert_array_equal(mmc.models.load(out).encode_cells(X), full.encode_cells(X))


def test_resume_without_checkpoint_trains_from_start(tmp_path, caplog, uninterrupted):
    a = mmc.tl.train(_data(), output_dir=tmp_path / "m", resume=True, **OPTS)
    assert "no complete checkpoint" in caplog.text
    expected = _weights(uninterrupted)
    for name, tensor in _weights(a).items():
        assert torch.equal(tensor, expected[name]), name


def test_incomplete_checkpoint_is_skipped(tmp_path):
    folder = tmp_path / "ck"
    (folder / "checkpoint-4").mkdir(parents=True)
    (folder / "checkpoint-4" / "trainer_state.json").write_text("{}")
    (folder / "checkpoint-8").mkdir()  # killed mid-checkpoint: no trainer_state.json
    (folder / "checkpoint-12").mkdir()
    (folder / "checkpoint-12" / "trainer_state.json").write_text('{"trunc')
    assert _checkpoints.last_checkpoint(folder) == str(folder / "checkpoint-4")
    assert _checkpoints.last_checkpoint(tmp_path / "none") is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"save_steps": 4}, "need output_dir"),
        ({"resume": True}, "need output_dir"),
        ({"save_steps": 0, "output_dir": "x"}, "positive int"),
    ],
)
def test_checkpoint_options_validated(kwargs, match):
    adata = _data()
    before = adata.copy()
    with pytest.raises(ValueError, match=match):
        mmc.tl.train(adata, **kwargs)
    assert adata.uns.keys() == before.uns.keys() and "train" not in adata.uns["mmcontext"]
