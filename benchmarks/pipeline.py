"""The whole atlas pipeline on generated data: time and peak RSS of each step against its plain bound, one run.

``n`` cells (default 1,000,000) x 50-d ``obsm['X_pca']``, 40 cell types and captions (``train_speed.make_adata``
without the prepare). Steps, each timed with the process's peak RSS sampled every 5 ms while it runs:

1. ``pp.prepare(adata, use_rep="X_pca")`` -- bound: nothing to compute (0 s);
2. ``tl.train`` 1 epoch, frozen text, batch 256 -- bound: the plain torch loop of ``train_speed.plain_frozen``;
3. ``tl.embed`` -- bound: the same MLP in plain torch over the matrix (batches of 1,024, normalised);
4. ``tl.query`` with 100 queries -- bound: encode the queries + one matmul with the joint embedding;
5. ``tl.build_index(method="faiss", path=...)`` -- bound: the same faiss index (same factory string, same training
   sample) built and written with faiss directly;
6. ``tl.search`` with that index, 100 queries, k=100 -- bound: encode the queries + the same faiss search.

Ratios: pipeline seconds / the sum of the bounds; peak RSS / (input matrix + joint embedding, float32 bytes).

Run (under the benchmark lock)::

    PYTHONPATH=src python benchmarks/pipeline.py [n_cells]
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
from train_speed import make_adata, plain_frozen  # benchmarks/ is on sys.path

import mmcontext as mmc


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Peak:
    """Peak RSS while the block runs (sampled every 5 ms)."""

    def __enter__(self):
        self.peak, self.done = rss_mb(), threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        self.t = time.perf_counter()
        return self

    def _sample(self):
        while not self.done.wait(0.005):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, rss_mb())


def plain_embed(model, X: np.ndarray) -> float:
    t = time.perf_counter()
    omics = model.omics_encoder
    out = np.empty((len(X), omics.output_dim), np.float32)
    with torch.inference_mode():
        for s in range(0, len(X), 1024):
            x = (torch.from_numpy(X[s : s + 1024]) - omics.input_mean) / omics.input_scale
            out[s : s + 1024] = torch.nn.functional.normalize(omics.net(x), dim=1).numpy()
    return time.perf_counter() - t


def plain_query(model, emb: np.ndarray, queries: list[str]) -> float:
    t = time.perf_counter()
    q = model.encode_text(queries, show_progress_bar=False)
    _ = emb @ q.T
    return time.perf_counter() - t


def plain_index(model, emb: np.ndarray, params: dict, path) -> tuple[float, object]:
    import faiss

    t = time.perf_counter()
    index = faiss.index_factory(emb.shape[1], params["factory"], faiss.METRIC_INNER_PRODUCT)
    sample = np.sort(np.random.default_rng(0).choice(len(emb), size=int(params["train_size"]), replace=False))
    index.train(np.ascontiguousarray(emb[sample]))
    index.add(emb)
    faiss.write_index(index, str(path))
    return time.perf_counter() - t, index


def plain_search(model, index, params: dict, queries: list[str]) -> float:
    import faiss

    t = time.perf_counter()
    q = model.encode_text(queries, show_progress_bar=False)
    faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])
    index.search(q, 100)
    return time.perf_counter() - t


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    mmc.settings.progress = False
    queries = [f"a type {k % 40} cell{' from blood' * (k // 40)}" for k in range(100)]
    adata = make_adata(n, prepare=False)
    X = adata.obsm["X_pca"]
    base = X.nbytes + n * 384 * 4
    print(f"{n} cells x {X.shape[1]}; input {X.nbytes / 2**20:.0f} MiB + joint embedding {n * 384 * 4 / 2**20:.0f} MiB")
    steps = []
    with Peak() as p:
        mmc.pp.prepare(adata, use_rep="X_pca", caption_keys="cell_type", ontology=False)
    steps.append(("pp.prepare (use_rep)", p))
    with Peak() as p:
        model = mmc.tl.train(adata, epochs=1, batch_size=256, seed=0)
    steps.append(("tl.train 1 epoch, frozen text", p))
    with Peak() as p:
        mmc.tl.embed(adata, model)
    steps.append(("tl.embed", p))
    with Peak() as p:
        mmc.tl.query(adata, model, queries)
    steps.append(("tl.query, 100 queries", p))
    work = tempfile.mkdtemp(prefix="mmc_pipeline_")
    with Peak() as p:
        index = mmc.tl.build_index(adata, method="faiss", path=os.path.join(work, "cells.index"))
    steps.append(("tl.build_index faiss (saved)", p))
    with Peak() as p:
        hits = mmc.tl.search(adata, model, queries, k=100, index=index, expand=None)
    steps.append(("tl.search faiss, 100 queries", p))
    assert len(hits) == 100 * 100, len(hits)
    # the plain bounds after the pipeline, so their memory never counts in its peaks
    emb = adata.obsm["X_mmc"]
    bounds = [0.0, plain_frozen(adata), plain_embed(model, X), plain_query(model, emb, queries)]
    index_s, plain = plain_index(model, emb, index.params, os.path.join(work, "plain.faiss"))
    bounds += [index_s, plain_search(model, plain, index.params, queries)]
    shutil.rmtree(work, ignore_errors=True)
    rows = [(name, p, b) for (name, p), b in zip(steps, bounds, strict=True)]
    print(f"{'step':32s} {'s':>8s} {'bound s':>8s} {'ratio':>6s} {'peak RSS MiB':>13s} {'/ (input+emb)':>14s}")
    for name, p, bound in rows:
        ratio = f"{p.seconds / bound:.2f}" if bound else "-"
        print(f"{name:32s} {p.seconds:8.1f} {bound:8.1f} {ratio:>6s} {p.peak:13.0f} {p.peak * 2**20 / base:14.2f}")
    total, bounds = sum(p.seconds for _, p, _ in rows), sum(b for *_, b in rows)
    peak = max(p.peak for _, p, _ in rows)
    print(f"pipeline {total:.1f} s vs plain bounds {bounds:.1f} s: {total / bounds:.2f}x; "
          f"peak RSS {peak:.0f} MiB = {peak * 2**20 / base:.2f}x (input + joint embedding)")  # fmt: skip


if __name__ == "__main__":
    main()
