"""Embedding an atlas that does not fit in memory: ``mmc.tl.embed`` streamed from a backed sparse h5ad.

Writes a synthetic log-normalised sparse h5ad chunk-wise to a temporary folder under /tmp (default
1,000,000 cells x 2,000 genes, 5% non-zero, CSR; 8 cell types with marker genes), trains a small model
on 2,000 of its cells (gene panel = all genes), then measures in fresh child processes (VmRSS sampled
every 5 ms; the baseline is taken after the imports, the model load and opening the file):

- streamed, all cells: ``anndata.read_h5ad(path, backed="r")`` + ``mmc.tl.embed(..., out="x.npy")``;
  cells/s and the peak RSS increase as a fraction of the dense float32 input it avoided (cells x genes x 4 B);
- on a subset (default 100,000 cells, its own h5ad): the in-memory path (``read_h5ad`` +
  ``pp.prepare(reference=model)`` + ``tl.embed``) vs the streamed path on the same file, as ratios, and the
  largest difference between their embeddings.

The data folder is deleted at the end. Absolute numbers depend on the machine (and on what else runs on it);
the ratios measured in one run are the point.

Run: ``PYTHONPATH=src python benchmarks/atlas_embed.py [n_cells] [n_genes] [subset] [chunk_size]``
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SRC = str(Path(__file__).resolve().parents[1] / "src")
TYPES = ["B cell", "T cell", "monocyte", "NK cell", "dendritic cell", "platelet", "erythrocyte", "plasma cell"]

CHILD = r"""
import json, os, sys, threading, time
os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import anndata as ad, numpy as np
import mmcontext as mmc

def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

mode, data, model_dir, out, chunk = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
mmc.settings.progress = False
model = mmc.models.load(model_dir)
backed = ad.read_h5ad(data, backed="r") if mode == "stream" else None
base = rss_mb()
peak = [base]
done = threading.Event()

def sample():
    while not done.wait(0.005):
        peak[0] = max(peak[0], rss_mb())

thread = threading.Thread(target=sample, daemon=True)
thread.start()
t = time.perf_counter()
if mode == "stream":
    mmc.tl.embed(backed, model, out=out, chunk_size=chunk)
else:
    adata = ad.read_h5ad(data)
    mmc.pp.prepare(adata, reference=model, caption_keys=False)
    mmc.tl.embed(adata, model)
seconds = time.perf_counter() - t
done.set(); thread.join()
peak[0] = max(peak[0], rss_mb())
if mode == "memory":
    np.save(out, adata.obsm["X_mmc"])
print(json.dumps({"seconds": seconds, "baseline_mb": base, "peak_mb": peak[0]}))
"""


def _chunk(rng: np.random.Generator, n: int, n_genes: int, density: float, start: int):
    """A CSR block of ``n`` cells: ``density * n_genes`` non-zeros per cell, marker genes of its type raised."""
    from scipy import sparse

    k = max(1, round(density * n_genes))
    stride = n_genes // k
    types = (np.arange(start, start + n) * 7919) % len(TYPES)  # deterministic, well mixed
    cols = stride * np.arange(k) + rng.integers(0, stride, size=(n, k))  # sorted and unique within a row
    vals = np.log1p(rng.random((n, k), dtype=np.float32) * 4 + 0.5)
    vals += 1.5 * ((cols // stride) % len(TYPES) == types[:, None])
    indptr = np.arange(0, n * k + 1, k, dtype=np.int64)
    X = sparse.csr_matrix((vals.astype(np.float32).ravel(), cols.astype(np.int32).ravel(), indptr), shape=(n, n_genes))
    return X, types


def write_h5ad(path: Path, n_cells: int, n_genes: int, *, density: float = 0.05, block: int = 50_000) -> float:
    """Write the synthetic atlas chunk-wise: obs/var through anndata, X's CSR arrays block by block with h5py."""
    import anndata as ad
    import h5py
    import pandas as pd

    k = max(1, round(density * n_genes))
    types = np.asarray(TYPES)[(np.arange(n_cells) * 7919) % len(TYPES)]
    obs = pd.DataFrame({"cell_type": pd.Categorical(types)}, index=[f"cell{i:07d}" for i in range(n_cells)])
    var = pd.DataFrame(index=[f"gene{j:05d}" for j in range(n_genes)])
    ad.AnnData(obs=obs, var=var).write_h5ad(path)
    rng = np.random.default_rng(0)
    with h5py.File(path, "a") as f:
        if "X" in f:
            del f["X"]
        g = f.create_group("X")
        g.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": (n_cells, n_genes)})
        data = g.create_dataset("data", shape=(n_cells * k,), dtype=np.float32)
        indices = g.create_dataset("indices", shape=(n_cells * k,), dtype=np.int32)
        g.create_dataset("indptr", data=np.arange(0, n_cells * k + 1, k, dtype=np.int64))
        for s in range(0, n_cells, block):
            X, _ = _chunk(rng, min(block, n_cells - s), n_genes, density, s)
            data[s * k : s * k + X.nnz] = X.data
            indices[s * k : s * k + X.nnz] = X.indices
    return k / n_genes


def _run(mode: str, data: Path, model_dir: Path, out: Path, chunk: int) -> dict:
    env = {**os.environ, "PYTHONPATH": SRC}
    res = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(data), str(model_dir), str(out), str(chunk)],
        capture_output=True,
        text=True,
        env=env,
    )
    if res.returncode:
        raise RuntimeError(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(n_cells: int = 1_000_000, n_genes: int = 2_000, subset: int = 100_000, chunk: int = 10_000) -> None:
    import anndata as ad

    sys.path.insert(0, SRC)
    import mmcontext as mmc

    mmc.settings.progress = False
    subset = min(subset, n_cells)
    tmp = Path(tempfile.mkdtemp(prefix="mmc_atlas_", dir="/tmp"))
    try:
        t = time.perf_counter()
        atlas, small = tmp / "atlas.h5ad", tmp / "subset.h5ad"
        density = write_h5ad(atlas, n_cells, n_genes)
        write_h5ad(small, subset, n_genes)  # the same first `subset` cells (same seed, same blocks)
        t_write = time.perf_counter() - t
        size_mb = atlas.stat().st_size / 2**20

        t = time.perf_counter()
        train = ad.read_h5ad(small, backed="r")[:2000].to_memory()
        mmc.pp.prepare(train, caption_keys={"cell_type": "cell_type"}, ontology=False)
        model = mmc.tl.train(train, epochs=2, hidden_dim=256, validation_split=0, seed=0)
        model.save_pretrained(str(tmp / "model"))
        t_train = time.perf_counter() - t

        mem = _run("memory", small, tmp / "model", tmp / "memory.npy", chunk)
        sub = _run("stream", small, tmp / "model", tmp / "subset.npy", chunk)
        diff = float(np.abs(np.load(tmp / "memory.npy") - np.load(tmp / "subset.npy")).max())
        full = _run("stream", atlas, tmp / "model", tmp / "atlas.npy", chunk)
        emb = np.load(tmp / "atlas.npy", mmap_mode="r")
        assert emb.shape[0] == n_cells and np.allclose(np.linalg.norm(emb[-5:], axis=1), 1, atol=1e-5)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def inc(r):
        return r["peak_mb"] - r["baseline_mb"]

    dense_mb = n_cells * n_genes * 4 / 2**20
    dense_sub_mb = subset * n_genes * 4 / 2**20
    dim = model.omics_encoder.output_dim
    print(
        f"atlas: {n_cells:,} cells x {n_genes:,} genes, {density:.0%} non-zero, CSR h5ad {size_mb:,.0f} MiB "
        f"(written in {t_write:.0f} s); model: {n_genes} -> 256 -> {dim}, trained on 2,000 cells in {t_train:.0f} s"
    )
    print(f"torch threads {__import__('torch').get_num_threads()}, chunk_size {chunk:,}")
    print(
        f"streamed, all cells   {n_cells / full['seconds']:>10,.0f} cells/s  ({full['seconds']:.0f} s)  "
        f"peak RSS +{inc(full):,.0f} MiB = {inc(full) / dense_mb:.3f} x the dense input ({dense_mb:,.0f} MiB)"
    )
    print(f"subset of {subset:,} cells:")
    print(
        f"  in-memory path      {subset / mem['seconds']:>10,.0f} cells/s  peak RSS +{inc(mem):,.0f} MiB "
        f"({inc(mem) / dense_sub_mb:.2f} x dense input)"
    )
    print(
        f"  streamed            {subset / sub['seconds']:>10,.0f} cells/s  peak RSS +{inc(sub):,.0f} MiB "
        f"({inc(sub) / dense_sub_mb:.2f} x dense input)"
    )
    print(
        f"  streamed / in-memory: speed x{mem['seconds'] / sub['seconds']:.2f}, "
        f"peak RSS increase x{inc(sub) / inc(mem):.3f}; max |difference| {diff:.1e}"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
