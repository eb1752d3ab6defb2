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


def _kill_mid_write(tmp_path: Path, body: str) -> None:
    """Run ``body`` in a child process; it creates the file ``marker`` mid-write, then it is SIGKILLed."""
    marker = tmp_path / "writing"
    env = {**os.environ, "PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1"}
    code = f"MARKER = {str(marker)!r}\n" + textwrap.dedent(body)
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 180
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "child never reached the write"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    marker.unlink()


#: a child that starts saving a *different* model over ``target`` and is killed with half-written weights
_SLOW_SAVE = """
    import time
    import mmcontext as mmc
    from mmcontext.models import OmicsEncoder

    model = mmc.models.MMContextEncoder.build(12, hidden_dim=16, n_layers=1, seed=1)
    real_save = OmicsEncoder.save

    def slow_save(self, path, *args, **kwargs):
        real_save(self, path, *args, **kwargs)
        with open(path + "/model.safetensors", "r+b") as fh:
            fh.truncate(100)  # a half-written weights file
        open(MARKER, "w").close()
        time.sleep(120)

    OmicsEncoder.save = slow_save
"""


@pytest.mark.parametrize("how", ["save_model", "save_pretrained", "save"])
def test_kill_during_model_save_keeps_previous_version(tmp_path, small_model, how):
    """``save_pretrained`` (the stock call users make), ``save`` and ``save_model`` over a good model, killed."""
    target = tmp_path / "model"
    small_model.save_pretrained(str(target)) if how != "save_model" else mmc.models.save_model(small_model, target)
    (target / "notes.txt").write_text("mine")  # a file the user keeps in the model folder
    X = np.random.default_rng(0).normal(size=(5, 12)).astype(np.float32)
    before = small_model.encode_cells(X)
    call = f"mmc.models.save_model(model, {str(target)!r})" if how == "save_model" else f"model.{how}({str(target)!r})"
    _kill_mid_write(tmp_path, textwrap.dedent(_SLOW_SAVE) + call)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".model.tmp-")]
    assert len(leftovers) == 1  # the half-written copy sits aside, never at the target
    loaded = mmc.models.load(target)
    np.testing.assert_array_equal(loaded.encode_cells(X), before)
    assert (target / "notes.txt").read_text() == "mine"
    # the next save removes what the killed one left behind
    small_model.save_pretrained(str(target)) if how != "save_model" else mmc.models.save_model(small_model, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    np.testing.assert_array_equal(mmc.models.load(target).encode_cells(X), before)
    if how != "save_model":  # save_pretrained never deletes files it does not write
        assert (target / "notes.txt").read_text() == "mine"


def test_kill_during_streamed_embed_leaves_nothing_after_next_write(tmp_path, small_model):
    """``tl.embed(out=)`` killed mid-file: the previous file stays; the next write removes the temporary."""
    import anndata as ad

    out = tmp_path / "emb.npy"
    adata = ad.AnnData(np.random.default_rng(0).normal(size=(40, 12)).astype(np.float32))
    adata.obsm["X_mmc_init"] = adata.X.copy()
    mmc.tl.embed(adata, small_model, out=out)
    good = np.load(out)
    h5ad = tmp_path / "a.h5ad"
    adata.write_h5ad(h5ad)
    body = f"""
        import anndata as ad, numpy as np, time
        import mmcontext as mmc
        from mmcontext.tl import _embed

        model = mmc.models.MMContextEncoder.build(12, hidden_dim=16, n_layers=1, seed=0)
        real = _embed._write_npy

        def slow(path, chunks, n_obs, dim):
            def stalled():
                for i, item in enumerate(chunks):
                    yield item
                    open(MARKER, "w").close()
                    time.sleep(120)
            return real(path, stalled(), n_obs, dim)

        _embed._write_npy = slow
        mmc.tl.embed(ad.read_h5ad({str(h5ad)!r}), model, out={str(out)!r}, chunk_size=10)
    """
    _kill_mid_write(tmp_path, body)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".emb.npy.tmp-")]
    np.testing.assert_array_equal(np.load(out), good)
    mmc.tl.embed(adata, small_model, out=out)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".emb.npy.")]


def test_leftovers_of_live_or_foreign_writers_are_kept(tmp_path):
    """Only temporaries of a dead process on this host are removed: a concurrent writer's stay."""
    from mmcontext._io import _owner, clean_leftovers

    target = tmp_path / "store"
    target.mkdir()
    host = _owner().rpartition("-")[0]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    names = {
        "live": f".store.tmp-{_owner()}-abc",  # this process: alive
        "dead": f".store.tmp-{host}-{dead.stdout.strip()}-abc",
        "other_host": f".store.tmp-elsewhere-{dead.stdout.strip()}-abc",
        "old_dead": f".store.old-{host}-{dead.stdout.strip()}",
        "unrelated": ".storeX.tmp-whatever",
    }
    for name in names.values():
        (tmp_path / name).mkdir()
    removed = clean_leftovers(target)
    assert sorted(removed) == sorted([names["dead"], names["old_dead"]])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["store", names["live"], names["other_host"], names["unrelated"]]
    )


@pytest.mark.parametrize("writer", ["atomic_dir", "atomic_save_dir", "save_model", "save_pretrained"])
def test_folder_writers_refuse_to_replace_a_file(tmp_path, small_model, writer):
    from mmcontext._io import atomic_save_dir

    path = tmp_path / "model"
    path.write_text("a user's file")
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        if writer == "atomic_dir":
            with atomic_dir(path):
                pass
        elif writer == "atomic_save_dir":
            with atomic_save_dir(path):
                pass
        elif writer == "save_model":
            mmc.models.save_model(small_model, path)
        else:
            small_model.save_pretrained(str(path))
    assert path.read_text() == "a user's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


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
    (shared / "sub").mkdir()
    (shared / "sub" / "deep.txt").write_text("deep")
    (shared / "link").symlink_to("other.txt")
    with atomic_save_dir(shared) as tmp:
        (tmp / "a.json").write_text("newer")
    assert (shared / "sub" / "deep.txt").read_text() == "deep" and (shared / "link").is_symlink()
    assert (shared / "link").read_text() == "keep me" and (shared / "a.json").read_text() == "newer"
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
