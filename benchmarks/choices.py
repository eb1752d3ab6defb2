"""The choices of docs/choosing.md, measured: input space x text tower, on pbmc68k_reduced.

Trains one model per setup on the training cells of ``mmc.datasets.pbmc_split`` (560 cells, captions from
``bulk_labels`` by ``mmc.pp.prepare``), same epochs and seed, and prints for the 140 held-out cells the zero-shot
``tl.annotate`` accuracy and macro-F1 over the 10 labels, the mean AUROC of the ``mmc.datasets.PBMC_QUERIES``
queries (``tl.query``) and the training time (wall clock, this machine; compare within one run):

- input space: the gene panel (``pp.prepare`` default, 765 genes), PCA computed by ``pp.prepare(method="pca")``
  (50 components), and an existing ``obsm`` key (``use_rep="X_pca"``, scanpy's own PCA of the scaled data);
- text tower: frozen (default) or ``text_trainable=2`` (the top two MiniLM layers train).

Losses are compared by ``benchmarks/losses.py``.

Run: ``PYTHONPATH=src python benchmarks/choices.py [--epochs 6] [--seed 0]``
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import mmcontext as mmc
from mmcontext.datasets import PBMC_LABEL_KEY, PBMC_QUERIES, pbmc_split

SETUPS = [  # (name, prepare kwargs, train kwargs)
    ("gene panel, frozen text", {}, {}),
    ("PCA (prepare), frozen text", {"method": "pca"}, {}),
    ("obsm X_pca, frozen text", {"use_rep": "X_pca"}, {}),
    ("gene panel, text_trainable=2", {}, {"text_trainable": 2}),
]


def run(prepare_kwargs: dict, train_kwargs: dict, *, epochs: int, seed: int) -> tuple[float, float, float, float]:
    adata = mmc.datasets.pbmc68k_reduced()
    mmc.pp.prepare(adata, caption_keys={"cell_type": PBMC_LABEL_KEY}, **prepare_kwargs)
    tr, te = pbmc_split(adata, seed=seed)
    train, test = adata[tr].copy(), adata[te].copy()
    start = time.perf_counter()
    model = mmc.tl.train(train, epochs=epochs, seed=seed, **train_kwargs)
    seconds = time.perf_counter() - start
    mmc.tl.annotate(test, model, PBMC_LABEL_KEY)
    mmc.tl.query(test, model, list(PBMC_QUERIES))
    res = mmc.tl.evaluate(test, label_key=PBMC_LABEL_KEY, queries=PBMC_QUERIES)
    cell = res[(res["subject"] == "mmc_label") & (res.get("level", "cell") == "cell")].set_index("metric")["value"]
    auroc = res[res["metric"] == "auroc"]["value"].mean()
    return float(cell["accuracy"]), float(cell["macro_f1"]), float(auroc), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    mmc.settings.progress = False
    rows = []
    for name, prep, train in SETUPS:
        rows.append((name, *run(prep, train, epochs=args.epochs, seed=args.seed)))
        print(f"done {name}: accuracy {rows[-1][1]:.3f} in {rows[-1][4]:.0f} s", flush=True)
    print(f"\npbmc68k_reduced held-out zero-shot (140 cells), {args.epochs} epochs, seed {args.seed}")
    print(f"{'setup':<30} {'accuracy':>8} {'macro_f1':>8} {'query_auroc':>11} {'train_s':>8} {'x_time':>7}")
    base = rows[0][4]
    for name, acc, f1, auroc, sec in rows:
        print(f"{name:<30} {acc:8.3f} {f1:8.3f} {auroc:11.3f} {sec:8.1f} {sec / base:7.2f}")


if __name__ == "__main__":
    main()
