"""Atomic writes: a save killed mid-way leaves the previous good version loadable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import mmcontext as mmc
from mmcontext._io import atomic_dir, atomic_file, recover_dir

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def small_model():
    return mmc.models.MMContextEncoder.build(12, hidden_dim=16, n_layers=1, seed=0)


def test_kill_during_model_save_keeps_previous_version(tmp_path, small_model):
    target = tmp_path / "model"
    mmc.models.save_model(small_model, target)
    X = np.random.default_rng(0).normal(size=(5, 12)).astype(np.float32)
    before = small_model.encode_cells(X)
    marker = tmp_path / "writing"
    child = textwrap.dedent(f"""
        import time
        import mmcontext as mmc
        from mmcontext.models import OmicsEncoder

        model = mmc.models.MMContextEncoder.build(12, hidden_dim=16, n_layers=1, seed=1)
        real_save = OmicsEncoder.save

        def slow_save(self, path, *args, **kwargs):
            real_save(self, path, *args, **kwargs)
            with open(path + "/model.safetensors", "r+b") as fh:
                fh.truncate(100)  # a half-written weights file
            open({str(marker)!r}, "w").close()
            time.sleep(120)

        OmicsEncoder.save = slow_save
        mmc.models.save_model(model, {str(target)!r})
    """)
    env = {**os.environ, "PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", child], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 180
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "child never reached the save"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".model.tmp-")]
    assert len(leftovers) == 1  # the half-written copy sits aside, never at the target
    loaded = mmc.models.load(target)
    np.testing.assert_array_equal(loaded.encode_cells(X), before)


def test_kill_between_renames_is_recovered(tmp_path, small_model):
    target = tmp_path / "model"
    mmc.models.save_model(small_model, target)
    # the state a kill leaves between `target -> .target.old-<pid>` and `tmp -> target`
    os.replace(target, tmp_path / ".model.old-12345")
    loaded = mmc.models.load(target)
    assert target.is_dir() and not (tmp_path / ".model.old-12345").exists()
    X = np.ones((2, 12), dtype=np.float32)
    np.testing.assert_array_equal(loaded.encode_cells(X), small_model.encode_cells(X))


def test_resave_replaces_and_leaves_no_temporaries(tmp_path, small_model):
    target = tmp_path / "model"
    mmc.models.save_model(small_model, target)
    mmc.models.save_model(small_model, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_atomic_dir_error_keeps_old(tmp_path):
    target = tmp_path / "store"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("v1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("v2-partial")
        raise RuntimeError("killed")
    assert (target / "a.txt").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    assert recover_dir(target) is False


def test_atomic_file_error_keeps_old(tmp_path, tiny):
    path = tmp_path / "a.h5ad"
    with atomic_file(path) as tmp:
        tiny.write_h5ad(tmp)
    with pytest.raises(RuntimeError), atomic_file(path) as tmp:
        tmp.write_bytes(b"garbage")
        raise RuntimeError("killed")
    import anndata as ad

    back = ad.read_h5ad(path)
    np.testing.assert_array_equal(back.X, tiny.X)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5ad"]


@pytest.mark.parametrize(
    "damage", ["missing_modules", "missing_omics", "truncated_weights", "bad_json", "garbage_header"]
)
def test_load_damaged_folder_names_the_file(tmp_path, small_model, damage):
    target = tmp_path / "model"
    mmc.models.save_model(small_model, target)
    omics = target / "omics_0_OmicsEncoder"
    if damage == "missing_modules":
        (target / "modules.json").unlink()
        err, match = FileNotFoundError, "modules.json.*is missing"
    elif damage == "missing_omics":
        import shutil

        shutil.rmtree(omics)
        err, match = FileNotFoundError, "omics_0_OmicsEncoder.*is missing"
    elif damage == "truncated_weights":
        with open(omics / "model.safetensors", "r+b") as fh:
            fh.truncate(os.path.getsize(omics / "model.safetensors") - 10)
        err, match = ValueError, "model.safetensors.*truncated"
    elif damage == "bad_json":
        (omics / "config.json").write_text('{"input_dim": 12,')
        err, match = ValueError, "config.json.*not valid JSON"
    else:
        (omics / "model.safetensors").write_bytes(b"\xff" * 64)
        err, match = ValueError, "model.safetensors.*(corrupted|truncated)"
    with pytest.raises(err, match=match) as info:
        mmc.models.load(target)
    assert "Save the model again" in str(info.value)


def test_atomic_save_dir_keeps_unrelated_files(tmp_path):
    from mmcontext._io import atomic_save_dir

    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "other.txt").write_text("keep me")
    (shared / "a.json").write_text("old")
    with atomic_save_dir(shared) as tmp:
        (tmp / "a.json").write_text("new")
    assert (shared / "other.txt").read_text() == "keep me" and (shared / "a.json").read_text() == "new"
    own = tmp_path / "own"
    with atomic_save_dir(own) as tmp:
        (tmp / "a.json").write_text("v1")
    with pytest.raises(RuntimeError), atomic_save_dir(own) as tmp:
        (tmp / "a.json").write_text("v2")
        raise RuntimeError("killed")
    assert (own / "a.json").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["own", "shared"]


def test_classifier_head_save_is_atomic(tmp_path, monkeypatch):
    import safetensors.torch

    from mmcontext.models._classifier import ClassifierHead

    head = ClassifierHead(4, classes=["a", "b"], hidden_dim=8)
    path = head.save(tmp_path / "head")
    before = {p.name: p.read_bytes() for p in path.iterdir()}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        ClassifierHead(4, classes=["a", "b", "c"], hidden_dim=8).save(path)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert ClassifierHead.load(path).classes == ["a", "b"]


def test_atomic_writes_keep_the_usual_permissions(tmp_path):
    import stat

    from mmcontext._io import atomic_dir, atomic_file

    plain_file, plain_dir = tmp_path / "plain.txt", tmp_path / "plain_dir"
    plain_file.write_text("x")
    plain_dir.mkdir()
    with atomic_file(tmp_path / "a.txt") as tmp:
        tmp.write_text("x")
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "f").write_text("x")
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "a.txt") == mode(plain_file)
    assert mode(tmp_path / "d") == mode(plain_dir)
