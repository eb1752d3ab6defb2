"""Tools: train, embed, query, annotate and evaluate."""

from ._annotate import annotate, label_query
from ._classify import classify, classify_evaluate, fit_classifier, train_reranker
from ._embed import embed
from ._evaluate import evaluate
from ._index import build_index, load_index
from ._query import query
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
    "load_index",
    "query",
    "search",
    "search_cells",
    "train",
    "train_reranker",
]
