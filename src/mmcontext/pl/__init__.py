"""Plots in the scanpy style: they take ``ax=``, ``show=``, ``return_fig=`` and return axes."""

from ._annotate import annotate
from ._embedding import embedding
from ._evaluate import evaluate
from ._markers import markers
from ._query import query
from ._similarity import similarity
from ._training import training

__all__ = ["annotate", "embedding", "evaluate", "markers", "query", "similarity", "training"]
