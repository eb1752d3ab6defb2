"""Tools: train, embed, query, annotate and evaluate."""

from ._annotate import annotate
from ._embed import embed
from ._evaluate import evaluate
from ._query import query
from ._train import train

__all__ = ["annotate", "embed", "evaluate", "query", "train"]
