"""The whole atlas pipeline on generated data: time and peak RSS of each step against its plain bound, one run.

``n`` cells (default 1,000,000) x 50-d ``obsm['X_pca']``, 40 cell types and captions (``train_speed.make_adata``
without the prepare). Steps, each timed, with the process's peak RSS while it runs (the kernel's high-water mark,
reset at the step's start: ``benchmarks/_rss.py``):

1. ``pp.prepare(adata, use_rep="X_pca")`` -- bound: nothing to compute (0 s);
2. ``tl.train`` 1 epoch, frozen text, batch 256 -- bound: the plain torch loop of ``train_speed.plain_frozen``;
3. ``tl.embed`` -- bound: the same MLP in plain torch over the matrix (batches of 1,024, normalised);
4. ``tl.query`` with 100 queries -- bound: encode the queries + one matmul with the joint embedding;
5. ``tl.build_index(method="faiss", path=...)`` -- bound: the same faiss index (same factory string, same training
   sample) built and written with faiss directly;
6. ``tl.search`` with that index, 100 queries, k=100 -- bound: encode the queries + the same faiss search.

Ratios: pipeline seconds / the sum of the bounds; peak RSS / (input matrix + joint embedding, float32 bytes).

``--steps`` picks the steps after ``prepare``, ``train`` and ``embed`` and their order (default
``index,search,query``: the issue's pipeline, then a query over the same cells with the index still in memory;
``query`` alone is the issue's "Memory" pipeline). The totals are printed for the whole run and for the run up to
each later step.

Run (under the benchmark lock)::

    PYTHONPATH=src python benchmarks/pipeline.py [n_cells] [--steps index,search,query]
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
from _rss import Peak
from train_speed import make_adata, plain_frozen  # benchmarks/ is on sys.path

import mmcontext as mmc


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
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n_cells", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--steps", default="index,search,query", help="after prepare, train, embed; comma-separated")
    args = parser.parse_args()
    n, later = args.n_cells, [s for s in args.steps.split(",") if s]
    if unknown := set(later) - {"index", "search", "query"}:
        parser.error(f"unknown steps {sorted(unknown)}")
    if "search" in later and ("index" not in later or later.index("search") < later.index("index")):
        parser.error("search needs index before it")
    mmc.settings.progress = False
    queries = [f"a type {k % 40} cell{' from blood' * (k // 40)}" for k in range(100)]
    adata = make_adata(n, prepare=False)
    X = adata.obsm["X_pca"]
    base = X.nbytes + n * 384 * 4
    print(f"{n} cells x {X.shape[1]}; input {X.nbytes / 2**20:.0f} MiB + joint embedding {n * 384 * 4 / 2**20:.0f} MiB")
    work = tempfile.mkdtemp(prefix="mmc_pipeline_")
    steps, state = [], {}

    def run(name, fn, *args, **kwargs):
        with Peak() as p:
            out = fn(*args, **kwargs)
        steps.append((name, p))
        return out

    run("pp.prepare (use_rep)", mmc.pp.prepare, adata, use_rep="X_pca", caption_keys="cell_type", ontology=False)
    model = run("tl.train 1 epoch, frozen text", mmc.tl.train, adata, epochs=1, batch_size=256, seed=0)
    run("tl.embed", mmc.tl.embed, adata, model)
    for step in later:
        if step == "index":
            path = os.path.join(work, "cells.index")
            state["index"] = run("tl.build_index faiss (saved)", mmc.tl.build_index, adata, method="faiss", path=path)
        elif step == "search":
            search = {"k": 100, "index": state["index"], "expand": None}
            hits = run("tl.search faiss, 100 queries", mmc.tl.search, adata, model, queries, **search)
            assert len(hits) == 100 * 100, len(hits)
        else:
            run("tl.query, 100 queries", mmc.tl.query, adata, model, queries)
    # the plain bounds after the pipeline, so their memory never counts in its peaks
    emb = adata.obsm["X_mmc"]
    bounds = [0.0, plain_frozen(adata), plain_embed(model, X)]
    for step in later:
        if step == "index":
            index_s, state["plain"] = plain_index(model, emb, state["index"].params, os.path.join(work, "plain.faiss"))
            bounds.append(index_s)
        elif step == "search":
            bounds.append(plain_search(model, state["plain"], state["index"].params, queries))
        else:
            bounds.append(plain_query(model, emb, queries))
    shutil.rmtree(work, ignore_errors=True)
    rows = [(name, p, b) for (name, p), b in zip(steps, bounds, strict=True)]
    print(f"{'step':32s} {'s':>8s} {'bound s':>8s} {'ratio':>6s} {'peak RSS MiB':>13s} {'/ (input+emb)':>14s}")
    for name, p, bound in rows:
        ratio = f"{p.seconds / bound:.2f}" if bound else "-"
        print(f"{name:32s} {p.seconds:8.1f} {bound:8.1f} {ratio:>6s} {p.peak:13.0f} {p.peak * 2**20 / base:14.2f}")
    for last in range(3, len(rows) + 1):
        part = rows[:last]
        total, bound = sum(p.seconds for _, p, _ in part), sum(b for *_, b in part)
        peak = max(p.peak for _, p, _ in part)
        print(f"pipeline through {part[-1][0]}: {total:.1f} s vs plain bounds {bound:.1f} s: {total / bound:.2f}x; "
              f"peak RSS {peak:.0f} MiB = {peak * 2**20 / base:.2f}x (input + joint embedding)")  # fmt: skip


if __name__ == "__main__":
    main()
