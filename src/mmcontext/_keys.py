"""Every AnnData key that mmcontext reads or writes by default, in one place."""

from __future__ import annotations

import re

#: ``uns`` entry holding provenance and parameters of every mmcontext result.
UNS = "mmcontext"

#: Entry of ``uns['mmcontext']`` holding each result's record by its ``key_added`` (see ``_provenance.record``).
RECORDS = "by_key"

#: ``obsm`` key of the initial embedding written by :func:`mmcontext.pp.prepare`.
X_INIT = "X_mmc_init"
#: ``obsm`` key of the joint cell embedding written by :func:`mmcontext.tl.embed`.
X_MMC = "X_mmc"
#: ``obs`` column of captions written by :func:`mmcontext.pp.captions`.
CAPTION = "mmc_caption"
#: ``obs`` column prefix of query scores written by :func:`mmcontext.tl.query`.
QUERY_PREFIX = "mmc_"
#: ``uns['mmcontext']`` record of :func:`mmcontext.tl.search` (its ``key_added``).
SEARCH = "mmc_search"
#: ``uns['mmcontext']`` record of :func:`mmcontext.tl.search_cells` (its ``key_added``).
SEARCH_CELLS = "mmc_search_cells"
#: ``obs`` columns of zero-shot labels written by :func:`mmcontext.tl.annotate`.
LABEL = "mmc_label"
#: ``obs`` column saying which cells trained the model (``"train"``, ``"validation"``, ``"unseen"``).
SPLIT = "mmc_split"
#: ``obsm`` key of the cell x label score matrix written by :func:`mmcontext.tl.annotate`.
LABEL_SCORES = "mmc_label_scores"

#: ``obsm`` key of the 2-d UMAP of the joint embedding drawn by :func:`mmcontext.pl.embedding`.
MMC_UMAP = "X_mmc_umap"
#: Default ``key_added`` of :func:`mmcontext.tl.classify` / :func:`mmcontext.tl.classify_evaluate`.
CLASSIFY = "mmc_classify"
#: ``varm`` key of the PCA loadings written by :func:`mmcontext.pp.prepare` (``method="pca"``).
PCA_LOADINGS = "mmc_pca_loadings"
#: Key of mmcontext's metadata in a training dataset's ``info.description`` JSON (:func:`mmcontext.pp.build_dataset`).
DATASET_META = "mmcontext"

#: Losses ``mmc.tl.train(loss=...)`` accepts.
LOSSES = ("mnrl", "cached_mnrl", "contrastive", "triplet", "clip")
#: Losses that read ``(cell, caption, label)`` pairs; the others read ``(cell, caption[, negatives])``.
PAIR_LOSSES = ("contrastive",)
#: Losses whose training columns hold a negative caption per cell (a caption of another label).
NEGATIVE_LOSSES = ("triplet", "contrastive")
#: Kinds of supervised head (:func:`mmcontext.tl.fit_classifier`).
TASKS = ("classification", "multilabel", "regression")

#: ``obs`` columns tried, in order, as the cell type when captions are built automatically.
CELL_TYPE_CANDIDATES = (
    "cell_type",
    "celltype",
    "cell_types",
    "cell_type_label",
    "cell_ontology_class",
    "bulk_labels",
    "labels",
    "annotation",
    "cell_label",
)


def query_key(query: str, prefix: str = QUERY_PREFIX) -> str:
    """Return the ``obs`` column name used for the scores of ``query``.

    Lower-cases the text and replaces every run of characters other than letters and digits
    by one underscore: ``"Natural killer cells"`` -> ``"mmc_natural_killer_cells"``.
    """
    slug = re.sub(r"[^0-9a-zA-Z]+", "_", query.strip().lower()).strip("_")
    if not slug:
        raise ValueError(f"Query {query!r} has no letters or digits to name its column; pass `key_added=`.")
    return f"{prefix}{slug}"
