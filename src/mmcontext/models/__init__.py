"""Models: the MMContext encoder and processor as sentence-transformers modules."""

from ._encoder import MMContextEncoder, load
from ._io import save_model
from ._losses import CaptionAwareMNRLoss
from ._omics import OmicsEncoder
from ._processor import ArrayStore, MMContextProcessor
from ._text import DEFAULT_TEXT_MODEL

__all__ = [
    "ArrayStore",
    "CaptionAwareMNRLoss",
    "save_model",
    "DEFAULT_TEXT_MODEL", "MMContextEncoder", "MMContextProcessor", "OmicsEncoder", "load"]
