"""Preprocessing: initial embeddings and captions written into an AnnData."""

from ._captions import captions, detect_caption_keys
from ._dataset import build_dataset, resample_negatives
from ._prepare import prepare

__all__ = ["build_dataset", "captions", "detect_caption_keys", "prepare", "resample_negatives"]
