"""Plots in the scanpy style: they take ``ax=``, ``show=``, ``return_fig=`` and return axes."""

from ._embedding import embedding
from ._query import query
from ._training import training

__all__ = ["embedding", "query", "training"]
