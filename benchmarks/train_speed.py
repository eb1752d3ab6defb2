"""Training speed of ``mmc.tl.train`` against a plain torch loop doing the same work, measured in one run.

Generated data: ``n`` cells x 50-d initial embedding (40 cell types around random centres), captions
"A type <k> cell." (40 distinct). Each row times, in the same process and interleaved (A, B, A, B; the faster
of each pair's rounds is kept, which is the least disturbed by other load on the machine):

- ``tl.train(adata, epochs=1, batch_size=256)`` with the text tower frozen -- the whole call: building the model
  (loading the text tower), encoding the captions, the epoch, validation and calibration;
- the plain bound: load the same text model, encode each distinct caption once, then one epoch of the same MLP
  (50 -> 512 -> 384, GELU, dropout 0.1, input standardised) with the same loss (in-batch negatives without
  repeated captions, scale 20, plus the cell-caption alignment term) and AdamW, over the same training cells.

``--trainable`` adds a row with the text tower trainable (``text_trainable=True``, batch 32, 2,000 cells, texts
tokenized every batch) against the same text model's plain forward + backward (tokenize, text forward, MLP,
loss, backward, AdamW step).

Pairs/s = training pairs (cells minus the 10% validation split) / wall seconds. Ratio = tl.train / plain.

Run (under the benchmark lock)::

    PYTHONPATH=src python benchmarks/train_speed.py                 # 200k cells
    PYTHONPATH=src python benchmarks/train_speed.py --cells 1000000
    PYTHONPATH=src python benchmarks/train_speed.py --cells 200000 --trainable
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import anndata as ad
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

import mmcontext as mmc

N_TYPES, DIM, HIDDEN, SCALE = 40, 50, 512, 20.0


def make_adata(n: int, seed: int = 0, *, prepare: bool = True) -> ad.AnnData:
    """``n`` cells of 40 types with a 50-d ``obsm['X_pca']`` and (``prepare``) captions, prepared for training."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, N_TYPES, n)
    centres = rng.standard_normal((N_TYPES, DIM)).astype(np.float32) * 2
    X = centres[labels] + rng.standard_normal((n, DIM), dtype=np.float32)
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical([f"type {k}" for k in range(N_TYPES)])[labels]},
        index=pd.RangeIndex(n).astype(str),
    )
    adata = ad.AnnData(obs=obs)
    adata.obsm["X_pca"] = X
    if prepare:
        mmc.pp.prepare(adata, use_rep="X_pca", caption_keys="cell_type", ontology=False)
    return adata


def _split(n: int, seed: int = 0) -> np.ndarray:
    """The training cells tl.train uses (its 10% validation split left out)."""
    cells = np.arange(n)
    np.random.default_rng(seed).shuffle(cells)
    return cells[round(0.1 * n) :]


def _mlp(d_in: int, d_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, HIDDEN), nn.GELU(), nn.Dropout(0.1), nn.Linear(HIDDEN, d_out))


def _loss(cells: torch.Tensor, texts: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    cells, texts = F.normalize(cells, dim=1), F.normalize(texts, dim=1)
    scores = cells @ texts.T * SCALE
    same = ids[:, None] == ids[None, :]
    same.fill_diagonal_(False)
    scores = scores.masked_fill(same, float("-inf"))
    ce = F.cross_entropy(scores, torch.arange(len(ids)))
    return ce + (1 - (cells * texts).sum(dim=1)).mean()


def plain_frozen(adata: ad.AnnData, batch_size: int = 256, seed: int = 0) -> float:
    """Seconds of the plain loop: text model loaded, distinct captions encoded once, one epoch of the MLP."""
    from sentence_transformers import SentenceTransformer

    from mmcontext.models._text import resolve_text_model

    t = time.perf_counter()
    torch.manual_seed(seed)
    text = SentenceTransformer(resolve_text_model(None), device="cpu")
    train = _split(adata.n_obs, seed)
    X = adata.obsm["X_pca"]
    distinct, inverse = np.unique(adata.obs["mmc_caption"].astype(str).to_numpy(), return_inverse=True)
    table = torch.from_numpy(text.encode(list(distinct), convert_to_numpy=True, show_progress_bar=False))
    mean = torch.from_numpy(X[train].mean(axis=0))
    scale = torch.from_numpy(X[train].std(axis=0))
    mlp = _mlp(X.shape[1], table.shape[1])
    opt = torch.optim.AdamW(mlp.parameters(), lr=1e-3)
    Xt, ids = torch.from_numpy(X), torch.from_numpy(inverse)
    order = torch.from_numpy(train)[torch.randperm(len(train))]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        loss = _loss(mlp((Xt[idx] - mean) / scale), table[ids[idx]], ids[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t


def plain_trainable(adata: ad.AnnData, batch_size: int = 32, seed: int = 0) -> float:
    """Seconds of the plain loop with the text tower trained: tokenize, text forward, MLP, loss, backward, step."""
    from sentence_transformers import SentenceTransformer

    from mmcontext.models._text import resolve_text_model

    t = time.perf_counter()
    torch.manual_seed(seed)
    text = SentenceTransformer(resolve_text_model(None), device="cpu")
    text.train()
    train = _split(adata.n_obs, seed)
    X = adata.obsm["X_pca"]
    captions = adata.obs["mmc_caption"].astype(str).to_numpy()
    _, inverse = np.unique(captions, return_inverse=True)
    mean = torch.from_numpy(X[train].mean(axis=0))
    scale = torch.from_numpy(X[train].std(axis=0))
    mlp = _mlp(X.shape[1], text.get_embedding_dimension())
    opt = torch.optim.AdamW([*mlp.parameters(), *text.parameters()], lr=1e-3)
    Xt, ids = torch.from_numpy(X), torch.from_numpy(inverse)
    order = torch.from_numpy(train)[torch.randperm(len(train))]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        features = text.preprocess([captions[i] for i in idx.tolist()])
        emb = text(features)["sentence_embedding"]
        loss = _loss(mlp((Xt[idx] - mean) / scale), emb, ids[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t


def mmc_train(adata: ad.AnnData, **kwargs) -> float:
    t = time.perf_counter()
    mmc.tl.train(adata, epochs=1, seed=0, **kwargs)
    return time.perf_counter() - t


def row(name: str, adata: ad.AnnData, ours, plain, rounds: int) -> dict:
    times = {"mmc": [], "plain": []}
    for _ in range(rounds):
        times["plain"].append(plain(adata))
        times["mmc"].append(ours(adata))
    pairs = len(_split(adata.n_obs))
    best = {k: min(v) for k, v in times.items()}
    out = {
        "row": name,
        "cells": adata.n_obs,
        "pairs": pairs,
        "mmc_s": round(best["mmc"], 2),
        "plain_s": round(best["plain"], 2),
        "mmc_pairs_s": round(pairs / best["mmc"]),
        "plain_pairs_s": round(pairs / best["plain"]),
        "ratio": round(best["plain"] / best["mmc"], 2),
        "all_mmc_s": [round(v, 2) for v in times["mmc"]],
        "all_plain_s": [round(v, 2) for v in times["plain"]],
    }
    print(out, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[200_000])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--trainable", action="store_true", help="also the trainable-text row (2,000 cells)")
    args = parser.parse_args()
    mmc.settings.progress = False
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu (no GPU in this run)")
    for n in args.cells:
        adata = make_adata(n)
        row(
            f"frozen text, batch 256, {n} cells",
            adata,
            lambda a: mmc_train(a, batch_size=256),
            plain_frozen,
            args.rounds,
        )
    if args.trainable:
        adata = make_adata(2000)
        row(
            "trainable text, batch 32, 2000 cells",
            adata,
            lambda a: mmc_train(a, batch_size=32, text_trainable=True, learning_rate=1e-3, text_learning_rate=1e-3),
            plain_trainable,
            args.rounds,
        )


if __name__ == "__main__":
    main()
