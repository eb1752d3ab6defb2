"""Tools: train, embed, query, search, annotate and evaluate."""

from ._annotate import annotate, label_scores
from ._classify import classify, fit_classifier
from ._embed import embed
from ._evaluate import classify_evaluate, evaluate
from ._index import build_index, load_index
from ._query import label_query, query
from ._rerank import train_reranker
from ._search import search, search_cells
from ._train import train

__all__ = [
    "annotate",
    "build_index",
    "classify",
    "classify_evaluate",
    "embed",
    "evaluate",
    "fit_classifier",
    "label_query",
    "label_scores",
    "load_index",
    "query",
    "search",
    "search_cells",
    "train",
    "train_reranker",
]
