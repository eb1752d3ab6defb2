"""Zero-shot quality of mmcontext against what a user would do instead, on one split of pbmc68k_reduced.

Run from the repository root::

    PYTHONPATH=src python benchmarks/quality.py            # everything (~5-10 min on 2 CPU cores)
    PYTHONPATH=src python benchmarks/quality.py --quick    # skip the leave-one-type-out runs

Prints, on ``mmc.datasets.pbmc_split`` (train 560 / test 140 cells, labels ``bulk_labels``):

1. held-out label accuracy / balanced accuracy / macro-F1 / MCC of mmcontext zero-shot (``tl.annotate``, with
   and without kNN smoothing) versus supervised kNN and logistic regression on ``X_pca`` and CellTypist trained
   on the training cells;
2. AUROC of each query of ``mmc.datasets.PBMC_QUERIES`` (``tl.query`` and ``tl.label_query``) versus
   ``sc.tl.score_genes`` with textbook marker genes of the same cell types;
3. a shuffled-caption control (captions permuted across training cells), whose accuracy must fall to the
   majority-class rate (its calibration, fitted on its validation cells, finds the cell scores uninformative);
4. each of the 10 cell types left out of training in turn, then found by its Cell Ontology name and by a synonym
   (AUROC over all cells of that type -- none was trained on -- against the other types' test cells; the name also
   on the test cells only; both also with ``tl.query(..., contrast=0.5)``), and by its annotate margin among all
   10 labels;
5. how much the scores change with the batch size or the subset of cells embedded;
6. scanpy's own ``sc.datasets.pbmc68k_reduced()`` (``X`` scaled, log-normalised expression in ``raw``) through
   ``mmc.pp.prepare`` defaults, trained and annotated at the same split and seed: held-out accuracy against the
   log-normalised copy of row 1.

``tl.query`` grounds cell type names in marker genes by default (``markers=True``); the query and left-out-type
tables also show the text score alone (``markers=False``).
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
import scanpy as sc
from _pbmc import pbmc_train_test  # benchmarks/_pbmc.py (the script's folder is on sys.path)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, matthews_corrcoef, roc_auc_score
from sklearn.neighbors import KNeighborsClassifier

import mmcontext as mmc
from mmcontext._keys import query_key
from mmcontext.datasets import PBMC_LABEL_KEY, PBMC_QUERIES

#: Textbook marker genes per query (those missing from pbmc68k_reduced's 765 genes are dropped).
MARKERS: dict[str, list[str]] = {
    "monocytes": ["CD14", "LYZ", "S100A8", "S100A9", "FCN1", "VCAN"],
    "B lymphocytes": ["CD79A", "CD79B", "MS4A1", "CD19", "BANK1"],
    "natural killer cells": ["GNLY", "NKG7", "KLRD1", "KLRF1", "NCAM1", "PRF1", "FCGR3A"],
    "dendritic cells": ["FCER1A", "CST3", "CLEC10A", "CD1C", "HLA-DQA1", "LILRA4"],
    "regulatory T cells": ["FOXP3", "IL2RA", "CTLA4", "TIGIT", "IKZF2"],
    "hematopoietic stem and progenitor cells": ["CD34", "PROM1", "KIT", "SOX4"],
    "cytotoxic T cells": ["CD8A", "CD8B", "GZMK", "GZMA", "GZMH", "CCL5"],
    "memory T helper cells": ["CD4", "IL7R", "S100A4", "ANXA1", "CD3E"],
    "T cells": ["CD3E", "CD3D", "CD3G", "CD2", "CD247"],
    "antibody-producing lineage cells": ["CD79A", "MZB1", "JCHAIN", "IGKC", "MS4A1"],
    "cytotoxic lymphocytes": ["GNLY", "NKG7", "PRF1", "GZMB", "GZMA", "CCL5"],
    "myeloid cells": ["LYZ", "CST3", "TYROBP", "FCER1G", "SPI1", "S100A9"],
}


def scores_row(name: str, truth, pred) -> dict:
    labels = np.unique(truth)
    return {
        "method": name,
        "accuracy": accuracy_score(truth, pred),
        "balanced_accuracy": balanced_accuracy_score(truth, pred),
        "macro_f1": f1_score(truth, pred, average="macro", labels=labels, zero_division=0),
        "mcc": matthews_corrcoef(truth, pred),
    }


def train_model(train, *, epochs: int, seed: int = 0):
    return mmc.tl.train(train, epochs=epochs, seed=seed)


def celltypist_predict(train, test) -> np.ndarray:
    import celltypist

    def expr(a):
        x = a.raw.to_adata()
        x.obs[PBMC_LABEL_KEY] = a.obs[PBMC_LABEL_KEY].to_numpy()
        return x

    # CellTypist's default solver passes `multi_class=` that scikit-learn >= 1.8 removed; its SGD solver
    # trains the same one-vs-rest logistic model
    model = celltypist.train(
        expr(train), labels=PBMC_LABEL_KEY, check_expression=False, n_jobs=2, use_SGD=True, alpha=1e-4, max_iter=1000
    )
    result = celltypist.annotate(expr(test), model=model, majority_voting=False)
    return result.predicted_labels["predicted_labels"].astype(str).to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--smooth", type=float, default=0.3, help="kNN smoothing strength of the second row")
    parser.add_argument("--quick", action="store_true", help="skip the leave-one-type-out runs")
    parser.add_argument("--contrast", type=float, default=0.5, help="tl.query contrast of the left-out-type columns")
    args = parser.parse_args()
    mmc.settings.progress = False
    start = time.perf_counter()
    pd.set_option("display.width", 160)

    data = pbmc_train_test()
    train, test, truth, labels = data.train, data.test, data.truth, data.labels
    majority = float(pd.Series(truth).value_counts(normalize=True).iloc[0])

    # -- 1. labels ---------------------------------------------------------------------------------
    t0 = time.perf_counter()
    model = train_model(train, epochs=args.epochs)
    t_train = time.perf_counter() - t0
    mmc.tl.embed(test, model)
    rows = []
    mmc.tl.annotate(test, model, labels)
    rows.append(scores_row("mmcontext zero-shot", truth, test.obs["mmc_label"].astype(str)))
    mmc.tl.annotate(test, model, labels, smooth=args.smooth, key_added="mmc_smooth")
    rows.append(
        scores_row(f"mmcontext zero-shot, kNN smoothing {args.smooth}", truth, test.obs["mmc_smooth"].astype(str))
    )
    Xtr, Xte, ytr = train.obsm["X_pca"], test.obsm["X_pca"], train.obs[PBMC_LABEL_KEY].astype(str)
    rows.append(
        scores_row("kNN (k=15) on X_pca, supervised", truth, KNeighborsClassifier(15).fit(Xtr, ytr).predict(Xte))
    )
    rows.append(
        scores_row(
            "logistic regression on X_pca, supervised",
            truth,
            LogisticRegression(max_iter=2000).fit(Xtr, ytr).predict(Xte),
        )
    )
    try:
        rows.append(scores_row("CellTypist trained on train cells, supervised", truth, celltypist_predict(train, test)))
    except ImportError:
        print("celltypist not installed (pip install celltypist): its row is left out")
    rows.append(
        {
            "method": "majority class",
            "accuracy": majority,
            "balanced_accuracy": 1 / len(labels),
            "macro_f1": np.nan,
            "mcc": 0.0,
        }
    )

    # -- 3. shuffled-caption control -------------------------------------------------------------------
    shuffled = train.copy()
    rng = np.random.default_rng(0)
    shuffled.obs["mmc_caption"] = shuffled.obs["mmc_caption"].to_numpy()[rng.permutation(shuffled.n_obs)]
    control = train_model(shuffled, epochs=args.epochs)
    ctrl = test.copy()
    mmc.tl.annotate(ctrl, control, labels, use_rep="X_mmc_init")
    rows.append(scores_row("control: shuffled captions", truth, ctrl.obs["mmc_label"].astype(str)))
    table = pd.DataFrame(rows).set_index("method")
    print(f"\n== Held-out labels ({test.n_obs} test cells, {len(labels)} types; mmcontext trained {t_train:.0f}s) ==")
    print(table.round(3).to_string())
    acc_ctrl = table.loc["control: shuffled captions", "accuracy"]
    pred_rate = ctrl.obs["mmc_label"].astype(str).value_counts(normalize=True)
    chance = float(sum(pred_rate.get(k, 0.0) * v for k, v in pd.Series(truth).value_counts(normalize=True).items()))
    print(
        f"shuffled-caption control: accuracy {acc_ctrl:.3f} vs majority rate {majority:.3f} "
        f"(|diff| {abs(acc_ctrl - majority):.3f}, must be <= 0.05); chance for its label mix (its predictions "
        f"permuted) {chance:.3f}"
    )
    for name, m in (("real captions", model), ("shuffled captions", control)):
        cal = m.calibration
        print(
            f"calibration on {cal['n_cells']} validation cells, {name}: weight of the cell scores "
            f"{cal['weight']:.3f}, "
            f"scale {cal['scale']:.1f}, NLL {cal['nll']:.3f} vs {cal['nll_prior_only']:.3f} from caption frequencies"
        )

    # -- 2. queries vs marker genes --------------------------------------------------------------------
    text_only = mmc.tl.query(test, model, list(PBMC_QUERIES), markers=False, copy=True)
    mmc.tl.query(test, model, list(PBMC_QUERIES))
    genes = set(test.raw.var_names)
    qrows = []
    for text, positives in PBMC_QUERIES.items():
        y = np.isin(truth, positives)
        markers = [g for g in MARKERS[text] if g in genes]
        sc.tl.score_genes(test, markers, score_name="_markers", use_raw=True, random_state=0)
        qrows.append(
            {
                "query": text,
                "mmcontext": roc_auc_score(y, test.obs[query_key(text)]),
                "mmcontext, text only": roc_auc_score(y, text_only.obs[query_key(text)]),
                "score_genes": roc_auc_score(y, test.obs["_markers"]),
                "markers": " ".join(markers),
            }
        )
    qtable = pd.DataFrame(qrows).set_index("query")
    via = test.copy()
    mmc.tl.label_query(via, model, list(PBMC_QUERIES), labels=labels)
    qtable.insert(
        2,
        "mmcontext label_query",
        [roc_auc_score(np.isin(truth, pos), via.obs[query_key(q)]) for q, pos in PBMC_QUERIES.items()],
    )
    qtable.loc["mean"] = [qtable[c].mean() for c in qtable.columns[:4]] + [""]
    print(
        "\n== Query AUROC on the test cells: mmcontext (tl.query with marker grounding, its default; without it; "
        "tl.label_query through the 10 labels) vs marker genes (sc.tl.score_genes) =="
    )
    print(qtable.round(3).to_string())

    # -- 4. a cell type left out of training entirely ------------------------------------------------------
    if not args.quick:
        from mmcontext.ontology import CellOntology

        onto = CellOntology.load()
        lrows = []
        for label in labels:
            term = onto.match(label)
            synonym = min(term.synonyms, key=len) if term.synonyms else term.name
            held = train[train.obs[PBMC_LABEL_KEY] != label].copy()
            loo = train_model(held, epochs=args.epochs)
            # no cell of the left-out type was trained on: its training-split cells join the test cells as positives
            probe = ad.concat([test, train[train.obs[PBMC_LABEL_KEY] == label]])
            mmc.tl.query(probe, loo, [term.name, synonym], key_added=["_name", "_synonym"], use_rep="X_mmc_init")
            mmc.tl.query(
                probe,
                loo,
                [term.name, synonym],
                key_added=["_name_c", "_synonym_c"],
                use_rep="X_mmc_init",
                contrast=args.contrast,
            )
            mmc.tl.query(
                probe,
                loo,
                [term.name, synonym],
                key_added=["_name_t", "_synonym_t"],
                use_rep="X_mmc_init",
                markers=False,
            )
            mmc.tl.query(
                probe,
                loo,
                [term.name],
                key_added="_name_tc",
                use_rep="X_mmc_init",
                contrast=args.contrast,
                markers=False,
            )
            y = probe.obs[PBMC_LABEL_KEY].astype(str).to_numpy() == label
            in_test = probe.obs_names.isin(test.obs_names)
            mmc.tl.annotate(probe, loo, labels, use_rep="X_mmc_init")
            S = mmc.tl.label_scores(probe)  # the labels as given (obsm holds h5ad-safe column names)
            margin = S[label] - S.drop(columns=label).max(axis=1)
            lrows.append(
                {
                    "left out": label,
                    "cells": int(y.sum()),
                    "name": term.name,
                    "AUROC name, test cells": roc_auc_score(y[in_test], probe.obs["_name"][in_test]),
                    "AUROC name": roc_auc_score(y, probe.obs["_name"]),
                    "synonym": synonym,
                    "AUROC synonym": roc_auc_score(y, probe.obs["_synonym"]),
                    "AUROC name, contrast": roc_auc_score(y, probe.obs["_name_c"]),
                    "AUROC synonym, contrast": roc_auc_score(y, probe.obs["_synonym_c"]),
                    "AUROC name, text only": roc_auc_score(y, probe.obs["_name_t"]),
                    "AUROC name, contrast, text only": roc_auc_score(y, probe.obs["_name_tc"]),
                    # no column when the panel holds none of the name's marker genes
                    "AUROC name, markers only": (
                        roc_auc_score(y, probe.obs["_name_markers"]) if "_name_markers" in probe.obs else np.nan
                    ),
                    "marker genes": " ".join(probe.uns["mmcontext"]["markers"]["_name"]["genes"]),
                    "AUROC label margin": roc_auc_score(y, margin),
                }
            )
        ltable = pd.DataFrame(lrows).set_index("left out")
        print(
            "\n== Each type left out of training, then queried by its CL name / a synonym (AUROC: all cells of the "
            "type, none seen in training, vs the other types' test cells) =="
        )
        print(ltable.round(3).to_string())
        for col in [
            "AUROC name, test cells",
            "AUROC name",
            "AUROC synonym",
            "AUROC name, contrast",
            "AUROC synonym, contrast",
            "AUROC name, text only",
            "AUROC name, contrast, text only",
            "AUROC name, markers only",
            "AUROC label margin",
        ]:
            print(f"{col}: mean {ltable[col].mean():.3f}, types >= 0.80: {(ltable[col] >= 0.8).sum()}/{len(ltable)}")
        print(
            "(label margin: the type's score in tl.annotate over all 10 labels minus the best other label's; "
            f"contrast: tl.query(..., contrast={args.contrast}), the cell's best training-caption similarity "
            "subtracted; text only: markers=False; markers only: the marker evidence obs['<key>_markers'])"
        )

    # -- 5. invariance ----------------------------------------------------------------------------------
    ref = mmc.tl.annotate(test, model, labels, use_rep="X_mmc_init", copy=True).obsm["mmc_label_scores"].to_numpy()
    old = mmc.settings.batch_size
    mmc.settings.batch_size = 7
    sub = test[::3].copy()
    mmc.tl.annotate(sub, model, labels, use_rep="X_mmc_init")
    mmc.settings.batch_size = old
    diff = float(np.abs(sub.obsm["mmc_label_scores"].to_numpy() - ref[::3]).max())
    print(f"\nmax |score difference|, batch size 7 on every third cell vs default batch on all: {diff:.2e}")

    # -- 6. scanpy's own pbmc68k_reduced as it ships (X scaled, raw log-normalised), prepare() defaults -------
    as_shipped = sc.datasets.pbmc68k_reduced()
    mmc.pp.prepare(as_shipped, caption_keys={"cell_type": PBMC_LABEL_KEY})
    source = as_shipped.uns["mmcontext"]["prepare"]["source"]
    s_train, s_test = as_shipped[data.tr].copy(), as_shipped[data.te].copy()
    s_model = train_model(s_train, epochs=args.epochs)
    mmc.tl.annotate(s_test, s_model, labels)
    acc_scanpy = accuracy_score(truth, s_test.obs["mmc_label"].astype(str))
    acc_lognorm = table.loc["mmcontext zero-shot", "accuracy"]
    print(
        f"scanpy's pbmc68k_reduced as shipped, prepare() defaults (read {source}): held-out accuracy {acc_scanpy:.3f} "
        f"vs {acc_lognorm:.3f} on the log-normalised copy (|diff| {abs(acc_scanpy - acc_lognorm):.3f}, must be <= 0.01)"
    )
    print(f"total {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()
