"""Preprocessing: initial embeddings and captions written into an AnnData."""

from ._captions import captions, detect_caption_keys
from ._prepare import prepare

__all__ = ["captions", "detect_caption_keys", "prepare"]
