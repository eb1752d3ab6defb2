"""Embedding stores: memory-mapped lookup, hash checks, URLs through pooch, processor integration."""

from __future__ import annotations

import functools
import http.server
import json
import threading

import numpy as np
import pytest
import torch

from mmcontext.models import EmbeddingStore, MMContextProcessor, StoreIntegrityError, open_store, write_store


def _matrix(n=200, d=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), [f"cell-{i:04d}-é" for i in rng.permutation(n)]


def test_write_open_roundtrip(tmp_path):
    X, ids = _matrix()
    store = write_store(X, tmp_path / "s", ids=ids, name="pbmc")
    assert isinstance(store, EmbeddingStore)
    assert (store.name, store.n_cells, store.dim) == ("pbmc", 200, 16)
    again = open_store(tmp_path / "s", known_hash=f"sha256:{store.sha256}")
    assert again.sha256 == store.sha256
    # ids resolve to their own rows, in the asked order, repeats allowed
    pick = [ids[7], ids[0], ids[199], ids[7]]
    np.testing.assert_array_equal(again.rows(pick), X[[7, 0, 199, 7]])
    assert isinstance(again.vectors, np.memmap)
    assert list(again.ids[:3]) == ids[:3]
    assert ids[5] in again and "nope" not in again
    with pytest.raises(KeyError, match="not found in store 'pbmc'"):
        again.rows([ids[1], "unknown-cell"])
    # an id longer than every stored id is not found (not truncated onto a stored one)
    assert again.positions([ids[3] + "x" * 50])[0] == -1


def test_write_is_atomic_and_idempotent(tmp_path, tiny):
    tiny.obsm["X_init"] = tiny.X[:, :5].copy()
    first = write_store(tiny, tmp_path / "t", use_rep="X_init")
    mtime = (tmp_path / "t" / "vectors.npy").stat().st_mtime_ns
    second = write_store(tiny, tmp_path / "t", use_rep="X_init")
    assert second.sha256 == first.sha256
    assert (tmp_path / "t" / "vectors.npy").stat().st_mtime_ns == mtime  # written once
    assert [p.name for p in tmp_path.iterdir()] == ["t"]  # no temp folders left behind
    tiny.obsm["X_init"][0, 0] += 1
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_store(tiny, tmp_path / "t", use_rep="X_init")
    third = write_store(tiny, tmp_path / "t", use_rep="X_init", overwrite=True)
    assert third.sha256 != first.sha256
    np.testing.assert_allclose(third.rows(["cell0"])[0], tiny.obsm["X_init"][0])


def test_bad_input_writes_nothing(tmp_path, tiny):
    with pytest.raises(KeyError, match="X_missing"):
        write_store(tiny, tmp_path / "s", use_rep="X_missing")
    with pytest.raises(ValueError, match="not unique"):
        write_store(np.zeros((2, 3)), tmp_path / "s", ids=["a", "a"])
    with pytest.raises(ValueError, match="contain no ':'"):
        write_store(np.zeros((2, 3)), tmp_path / "s", ids=["a", "b"], name="x:y")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupted_store_is_detected(tmp_path, damage):
    X, ids = _matrix()
    store = write_store(X, tmp_path / "s", ids=ids)
    f = tmp_path / "s" / "vectors.npy"
    data = f.read_bytes()
    f.write_bytes(data[:-100] if damage == "truncate" else data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(StoreIntegrityError, match="corrupted or truncated"):
        open_store(tmp_path / "s")
    # a processor remembering the store refuses to resolve references from it
    proc = MMContextProcessor(sources={"s": store.spec()})
    with pytest.raises(StoreIntegrityError):
        proc([f"s:{ids[0]}"], 16)


def test_known_hash_mismatch(tmp_path):
    X, ids = _matrix()
    write_store(X, tmp_path / "s", ids=ids)
    with pytest.raises(StoreIntegrityError, match="does not match the expected"):
        open_store(tmp_path / "s", known_hash="sha256:" + "0" * 64)


@pytest.fixture
def http_root(tmp_path):
    """A static file server on 127.0.0.1 serving tmp_path/'www'."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_open_store_from_url(tmp_path, http_root):
    root, base = http_root
    X, ids = _matrix()
    local = write_store(X, root / "pbmc", ids=ids, name="pbmc")
    cache = tmp_path / "cache"
    store = open_store(f"{base}/pbmc", known_hash=local.sha256, cache=cache)
    assert store.sha256 == local.sha256 and store.source == f"{base}/pbmc"
    assert store.path.parent == cache  # downloaded into the cache, named by the hash
    np.testing.assert_array_equal(store.rows([ids[3], ids[150]]), X[[3, 150]])
    # second open: served from the cache (server content no longer needed)
    (root / "pbmc" / "vectors.npy").unlink()
    again = open_store(f"{base}/pbmc/manifest.json", known_hash=local.sha256, cache=cache)
    np.testing.assert_array_equal(again.rows([ids[9]]), X[[9]])


def test_corrupted_download_is_detected(tmp_path, http_root):
    root, base = http_root
    X, ids = _matrix()
    local = write_store(X, root / "pbmc", ids=ids)
    f = root / "pbmc" / "vectors.npy"
    f.write_bytes(f.read_bytes()[:-64])  # truncated on the server
    with pytest.raises(StoreIntegrityError, match=r"vectors\.npy"):
        open_store(f"{base}/pbmc", known_hash=local.sha256, cache=tmp_path / "cache")
    # a replaced manifest is caught by the known hash
    m = root / "pbmc" / "manifest.json"
    meta = json.loads(m.read_text())
    meta["name"] = "other"
    m.write_text(json.dumps(meta))
    with pytest.raises(StoreIntegrityError, match="manifest"):
        open_store(f"{base}/pbmc", known_hash=local.sha256, cache=tmp_path / "cache2")


def test_processor_several_stores_and_vectors(tmp_path):
    Xa, ids_a = _matrix(50, 8, seed=1)
    Xb, ids_b = _matrix(30, 8, seed=2)
    proc = MMContextProcessor()
    proc.add_store(write_store(Xa, tmp_path / "a", ids=ids_a))
    write_store(Xb, tmp_path / "b", ids=ids_b)
    proc.add_store(str(tmp_path / "b"))  # by path
    out = proc([f"a:{ids_a[4]}", f"b:{ids_b[2]}", Xa[0].tolist(), {"omics": torch.from_numpy(Xb[5])}], 8)
    np.testing.assert_array_equal(out.numpy(), np.stack([Xa[4], Xb[2], Xa[0], Xb[5]]))
    assert set(proc.sources) == {"a", "b"}
    # a fresh processor from the remembered sources opens the stores lazily, on first use
    fresh = MMContextProcessor(sources=proc.sources)
    assert fresh.stores == {}
    np.testing.assert_array_equal(fresh([f"b:{ids_b[0]}"], 8).numpy(), Xb[[0]])
    assert list(fresh.stores) == ["b"]
    with pytest.raises(KeyError, match="names no registered store"):
        fresh(["c:x"], 8)


def test_model_remembers_stores_across_save_and_load(tmp_path):
    import mmcontext as mmc

    X, ids = _matrix(40, 12)
    store = write_store(X, tmp_path / "s", ids=ids, name="atlas")
    model = mmc.models.MMContextEncoder.build(12, hidden_dim=16)
    model.processor.add_store(store)
    refs = [f"atlas:{i}" for i in ids[:5]]
    before = model.encode(refs, task="omics")
    model.save_pretrained(str(tmp_path / "m"))
    loaded = mmc.models.load(str(tmp_path / "m"))
    assert loaded.omics_encoder.stores == {"atlas": store.spec()}
    np.testing.assert_allclose(loaded.encode(refs, task="omics"), before, atol=1e-6)
    # raw vectors work with no store at all
    np.testing.assert_allclose(loaded.encode_cells(X[:5]), before, atol=1e-5)
