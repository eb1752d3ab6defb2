"""What the cross-encoder reranker and the supervised head add over the bi-encoder, on pbmc68k_reduced.

Run ``PYTHONPATH=src python benchmarks/rerank.py [--seeds 0 1 2] [--epochs 6] [--rerank-epochs 6]``.

For each seed: train the bi-encoder (``mmc.tl.train``) and a :class:`~mmcontext.models.CellTextReranker`
(``mmc.tl.train_reranker``) on the training cells of ``mmc.datasets.pbmc_split``; on the held-out cells
compare zero-shot annotation (accuracy, macro-F1) and the query AUROC over ``mmc.datasets.PBMC_QUERIES``,
bi-encoder alone vs with reranking at several ``top_k``, and the supervised head
(``mmc.tl.classify``) on the joint embedding vs on ``X_pca``. Times are wall-clock on this machine,
reported per 1,000 cells (query: per 1,000 cells and query).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import time

import anndata as ad
import numpy as np
import pandas as pd
from _pbmc import pbmc_train_test  # benchmarks/_pbmc.py (the script's folder is on sys.path)

import mmcontext as mmc

LABEL = mmc.datasets.PBMC_LABEL_KEY
QUERIES = mmc.datasets.PBMC_QUERIES


def _zero_shot(test: ad.AnnData, model, rerank=None, top_k: int = 3) -> tuple[float, float, float]:
    a = test.copy()
    t = time.perf_counter()
    mmc.tl.annotate(a, model, LABEL, rerank=rerank, top_k=top_k)
    dt = time.perf_counter() - t
    ev = mmc.tl.evaluate(a, label_key=LABEL)
    get = lambda m: float(ev[(ev.metric == m) & (ev.subject == "mmc_label")].value.iloc[0])  # noqa: E731
    return get("accuracy"), get("macro_f1"), dt / a.n_obs * 1000


def _query(test: ad.AnnData, model, rerank=None, top_k: int = 100) -> tuple[float, float, float]:
    a = test.copy()
    t = time.perf_counter()
    mmc.tl.query(a, model, list(QUERIES), rerank=rerank, top_k=top_k)
    dt = time.perf_counter() - t
    ev = mmc.tl.evaluate(a, label_key=LABEL, pred_key="__none__", queries=QUERIES)
    aurocs = ev[(ev.metric == "auroc") & (ev.subject.isin(list(QUERIES)))].value
    return float(aurocs.mean()), float(aurocs.min()), dt / a.n_obs / len(QUERIES) * 1000


def _head(adata: ad.AnnData, model, is_train: np.ndarray, use_rep: str | None) -> tuple[float, float, float]:
    a = adata.copy()
    a.obs["is_train"] = is_train
    t = time.perf_counter()
    mmc.tl.classify(a, model, label_key=LABEL, train_mask="is_train", use_rep=use_rep)
    dt = time.perf_counter() - t
    ev = mmc.tl.classify_evaluate(a, label_key=LABEL, mask=~is_train)
    get = lambda m: float(ev[ev.metric == m].value.iloc[0])  # noqa: E731
    return get("accuracy"), get("macro_f1"), dt


def _cost(test: ad.AnnData, model, rr, *, n_cells: int) -> list[tuple]:
    """Marginal cost on ``n_cells`` cells (the test cells repeated), s per 1,000 cells; the last seed's models."""
    reps = int(np.ceil(n_cells / test.n_obs))
    big = ad.concat([test] * reps, index_unique="-", uns_merge="first")[:n_cells].copy()
    mmc.tl.embed(big, model)  # shared by both setups; not timed
    out = []
    for name, kw in (("bi-encoder", {}), ("rerank top3", {"rerank": rr, "top_k": 3})):
        t = time.perf_counter()
        mmc.tl.annotate(big, model, LABEL, **kw)
        out.append(("last", "cost", f"annotate {name}", "s_per_1k_cells", (time.perf_counter() - t) / n_cells * 1000))
    for name, kw in (("bi-encoder", {}), ("rerank top1000", {"rerank": rr, "top_k": 1000})):
        t = time.perf_counter()
        mmc.tl.query(big, model, "natural killer cells", **kw)
        out.append(("last", "cost", f"query {name}", "s_per_query", time.perf_counter() - t))
    X = big.obsm[rr.input_space["obsm_key"]]
    t = time.perf_counter()
    rr.score_pairs(X, ["natural killer cells"], np.arange(n_cells), np.zeros(n_cells, dtype=int))
    out.append(("last", "cost", "reranker pairs", "s_per_1k_pairs", (time.perf_counter() - t) / n_cells * 1000))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=6, help="bi-encoder epochs")
    parser.add_argument("--rerank-epochs", type=int, default=6)
    parser.add_argument("--query-top-k", type=int, nargs="+", default=[20, 50, 140])
    parser.add_argument("--annotate-top-k", type=int, nargs="+", default=[2, 3, 5])
    parser.add_argument("--cost-cells", type=int, default=5000, help="cells (test cells repeated) for the timing")
    args = parser.parse_args()
    mmc.settings.progress = False

    data = pbmc_train_test()
    adata, tr, train, test = data.adata, data.tr, data.train, data.test
    is_train = np.isin(np.arange(adata.n_obs), tr)
    rows = []
    for seed in args.seeds:
        t = time.perf_counter()
        model = mmc.tl.train(train, epochs=args.epochs, seed=seed)
        t_bi = time.perf_counter() - t
        rr = mmc.tl.train_reranker(train, epochs=args.rerank_epochs, seed=seed)
        rows.append((seed, "train", "bi-encoder", "seconds", t_bi))
        rows.append((seed, "train", "reranker", "seconds", rr.train_seconds))
        for name, kw in [("bi-encoder", {})] + [
            (f"rerank top{k}", {"rerank": rr, "top_k": k}) for k in args.annotate_top_k
        ]:
            values = _zero_shot(test, model, **kw)
            rows += [
                (seed, "annotate", name, metric, v)
                for metric, v in zip(("accuracy", "macro_f1", "s_per_1k_cells"), values, strict=True)
            ]
        for name, kw in [("bi-encoder", {})] + [
            (f"rerank top{k}", {"rerank": rr, "top_k": k}) for k in args.query_top_k
        ]:
            values = _query(test, model, **kw)
            rows += [
                (seed, "query", name, metric, v)
                for metric, v in zip(("auroc_mean", "auroc_min", "s_per_1k_cells_per_query"), values, strict=True)
            ]
        for name, m, rep in (("head on X_mmc", model, None), ("head on X_pca", None, "X_pca")):
            acc, f1, secs = _head(adata, m, is_train, rep)
            rows += [
                (seed, "supervised", name, "accuracy", acc),
                (seed, "supervised", name, "macro_f1", f1),
                (seed, "supervised", name, "seconds", secs),
            ]
    rows += _cost(test, model, rr, n_cells=args.cost_cells)
    table = pd.DataFrame(rows, columns=["seed", "task", "setup", "metric", "value"])
    summary = table.groupby(["task", "setup", "metric"], sort=False).value.agg(["mean", "std", "count"])
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(summary.round(4).to_string())


if __name__ == "__main__":
    main()
