"""Preprocessing: initial embeddings and captions written into an AnnData."""

from ._captions import captions, detect_caption_keys
from ._dataset import build_dataset, resample_negatives
from ._orthologs import ortholog_map
from ._prepare import prepare

__all__ = ["build_dataset", "captions", "detect_caption_keys", "ortholog_map", "prepare", "resample_negatives"]
