"""Tools: train, embed, query, annotate and evaluate."""

from ._annotate import annotate, label_query
from ._classify import classify, classify_evaluate, fit_classifier, train_reranker
from ._embed import embed
from ._evaluate import evaluate
from ._grounding import MARKER_WEIGHT
from ._query import query
from ._train import train

__all__ = [
    "MARKER_WEIGHT",
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
