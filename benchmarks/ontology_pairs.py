"""Do Cell Ontology text pairs (``mmc.tl.train(text_pairs="ontology")``) help the text tower? pbmc68k_reduced.

Run from the repository root::

    PYTHONPATH=src python benchmarks/ontology_pairs.py            # everything (~1.5 h on 2 CPU cores)
    PYTHONPATH=src python benchmarks/ontology_pairs.py --quick    # skip the leave-one-type-out runs (~10 min)

On a CPU shared with other jobs, ``OMP_NUM_THREADS=1`` avoids thread oversubscription (3x faster text training here).

Three setups side by side, trained on the ``mmc.datasets.pbmc_split`` training cells (560 of 700; captions from
``bulk_labels`` by ``mmc.pp.prepare``), same epochs and seed:

- frozen text tower (the default);
- ``text_trainable=2`` (top two MiniLM layers train on the captions);
- ``text_trainable=2, text_pairs="ontology"`` (and on (synonym, name), (definition, name), (name, ancestor) pairs
  of the CL terms of the training labels and their ancestors).

Printed per setup, on the 140 test cells:

1. zero-shot ``tl.annotate`` accuracy and macro-F1 over the 10 labels;
2. AUROC of each query of ``mmc.datasets.PBMC_QUERIES`` (``tl.query``; broad and synonym queries) and their mean;
3. each of the 10 types left out of training in turn, then found by its Cell Ontology name (AUROC), as in
   section 4 of ``benchmarks/quality.py``: only the pairs of the 9 remaining labels (and their ancestors) train.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pandas as pd
from _pbmc import pbmc_train_test  # benchmarks/_pbmc.py (the script's folder is on sys.path)
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

import mmcontext as mmc
from mmcontext._keys import query_key
from mmcontext.datasets import PBMC_LABEL_KEY, PBMC_QUERIES

SETUPS: dict[str, dict] = {
    "frozen text (default)": {},
    "text_trainable=2": {"text_trainable": 2},
    "text_trainable=2 + ontology pairs": {"text_trainable": 2, "text_pairs": "ontology"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="skip the leave-one-type-out runs")
    args = parser.parse_args()
    mmc.settings.progress = False
    pd.set_option("display.width", 200)
    start = time.perf_counter()

    data = pbmc_train_test()
    train, test, truth, labels = data.train, data.test, data.truth, data.labels

    def fit(cells, kwargs):
        t0 = time.perf_counter()
        model = mmc.tl.train(cells, epochs=args.epochs, seed=args.seed, **kwargs)
        return model, time.perf_counter() - t0

    summary, queries = {}, {}
    for name, kwargs in SETUPS.items():
        model, seconds = fit(train, kwargs)
        probe = test.copy()
        mmc.tl.embed(probe, model)
        mmc.tl.annotate(probe, model, labels)
        pred = probe.obs["mmc_label"].astype(str).to_numpy()
        mmc.tl.query(probe, model, list(PBMC_QUERIES))
        aurocs = {q: roc_auc_score(np.isin(truth, pos), probe.obs[query_key(q)]) for q, pos in PBMC_QUERIES.items()}
        queries[name] = aurocs
        pairs = model.mmc_training.get("text_pairs") or {}
        summary[name] = {
            "accuracy": accuracy_score(truth, pred),
            "macro_f1": f1_score(truth, pred, average="macro", labels=labels, zero_division=0),
            "query AUROC (mean)": float(np.mean(list(aurocs.values()))),
            "query AUROC (worst)": float(np.min(list(aurocs.values()))),
            "text pairs": int(pairs.get("n_pairs", 0)),
            "train s": seconds,
        }
        print(f"trained {name!r} in {seconds:.0f}s", flush=True)

    loto = {}
    if not args.quick:
        from mmcontext.ontology import CellOntology

        onto = CellOntology.load()
        for label in labels:
            term = onto.match(label)
            held = train[train.obs[PBMC_LABEL_KEY] != label].copy()
            y = truth == label
            row = {"CL name": term.name}
            for name, kwargs in SETUPS.items():
                model, _ = fit(held, kwargs)
                probe = test.copy()
                mmc.tl.query(probe, model, [term.name], key_added="_name", use_rep="X_mmc_init")
                row[name] = roc_auc_score(y, probe.obs["_name"])
            loto[label] = row
            print(
                f"left out {label!r}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items() if k != "CL name"),
                flush=True,
            )

    table = pd.DataFrame(summary).T.astype({"text pairs": int})
    if loto:
        ltable = pd.DataFrame(loto).T
        table["left-out type by CL name AUROC (mean)"] = [ltable[name].astype(float).mean() for name in SETUPS]
        table["left-out types >= 0.80"] = [
            f"{int((ltable[name].astype(float) >= 0.8).sum())}/{len(ltable)}" for name in SETUPS
        ]
    print(
        f"\n== pbmc68k_reduced: {train.n_obs} train / {test.n_obs} test cells, {args.epochs} epochs, "
        f"seed {args.seed} =="
    )
    print(table.round(3).to_string())
    print("\n== Query AUROC on the test cells (tl.query) ==")
    qtable = pd.DataFrame(queries)
    qtable.loc["mean"] = qtable.mean()
    print(qtable.round(3).to_string())
    if loto:
        print("\n== Each type left out of training, then queried by its Cell Ontology name (AUROC, test cells) ==")
        print(ltable.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"\ntotal {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()
