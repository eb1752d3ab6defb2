"""Tools: train, embed, query, annotate and evaluate."""

from ._annotate import annotate, label_scores
from ._classify import classify, classify_evaluate, fit_classifier
from ._embed import embed
from ._evaluate import evaluate
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
    "label_scores",
    "query",
    "train",
    "train_reranker",
]
