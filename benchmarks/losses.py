"""Held-out zero-shot accuracy of each training loss on pbmc68k_reduced.

Trains one model per loss (``mmc.tl.train(loss=...)``) on the training cells of ``mmc.datasets.pbmc_split``,
annotates the held-out cells zero-shot with ``mmc.tl.annotate`` over the ``bulk_labels`` categories and scores
them with ``mmc.tl.evaluate``. Prints a table with each loss's gap to the best one.

Run: ``PYTHONPATH=src python benchmarks/losses.py [--epochs 6] [--losses mnrl,clip]``
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _pbmc import pbmc_train_test  # benchmarks/_pbmc.py (the script's folder is on sys.path)

import mmcontext as mmc
from mmcontext.models._losses import LOSSES


def cell_metrics(table):
    """Cell-level metrics of the zero-shot labels (``obs['mmc_label']``) from ``mmc.tl.evaluate``'s table."""
    rows = table[(table["subject"] == "mmc_label") & (table.get("level", "cell") == "cell")]
    return rows.set_index("metric")["value"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--losses", default=",".join(LOSSES))
    parser.add_argument("--matryoshka", type=int, nargs="*", default=None, help="also train truncated dims")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    mmc.settings.progress = False

    data = pbmc_train_test()
    train, test = data.train, data.test
    rows = []
    for loss in args.losses.split(","):
        start = time.perf_counter()
        model = mmc.tl.train(train, loss=loss, epochs=args.epochs, seed=args.seed, matryoshka_dims=args.matryoshka)
        seconds = time.perf_counter() - start
        mmc.tl.annotate(test, model, "bulk_labels")
        res = cell_metrics(mmc.tl.evaluate(test, label_key="bulk_labels"))
        rows.append((loss, res["accuracy"], res["balanced_accuracy"], res["macro_f1"], seconds))
        print(f"done {loss}: accuracy {res['accuracy']:.3f} in {seconds:.0f} s", flush=True)
    best = max(r[1] for r in rows)
    print(f"\npbmc68k_reduced held-out zero-shot ({test.n_obs} cells), {args.epochs} epochs, seed {args.seed}")
    print(f"{'loss':<12} {'accuracy':>8} {'bal_acc':>8} {'macro_f1':>8} {'train_s':>8} {'gap':>7}")
    for loss, acc, bal, f1, sec in rows:
        print(f"{loss:<12} {acc:8.3f} {bal:8.3f} {f1:8.3f} {sec:8.1f} {best - acc:7.3f}")
    print(f"all within 0.05 of the best: {all(best - r[1] <= 0.05 for r in rows)}")


if __name__ == "__main__":
    main()
