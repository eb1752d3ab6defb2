"""Tools: train, embed, query, annotate and evaluate."""

from ._annotate import annotate
from ._classify import classify, fit_classifier
from ._embed import embed
from ._evaluate import classify_evaluate, evaluate
from ._query import label_query, query
from ._rerank import train_reranker
from ._train import train

__all__ = [
    "annotate",
    "classify",
    "classify_evaluate",
    "embed",
    "evaluate",
    "fit_classifier",
    "label_query",
    "query",
    "train",
    "train_reranker",
]
