"""Models: the MMContext encoder and processor as sentence-transformers modules.

The stores are re-exported from :mod:`mmcontext.data`; ``write_store`` is the AnnData-facing writer of
:mod:`mmcontext.pp._store` (public here since 0.1), the one place this namespace names a higher layer.
"""

from ..data import ArrayStore, EmbeddingStore, StoreIntegrityError, open_store
from ..pp._store import write_store
from ._classifier import ClassifierHead
from ._encoder import MMContextEncoder, load
from ._evaluator import CellCaptionEvaluator
from ._fingerprint import model_fingerprint
from ._io import save_model
from ._locate import ModelNotFoundError
from ._losses import LOSSES, CaptionAwareMNRLoss, CLIPLoss, TextPairMNRLoss, make_loss
from ._omics import OmicsEncoder
from ._processor import MMContextProcessor
from ._reranker import CellTextReranker
from ._text import DEFAULT_TEXT_MODEL

__all__ = [
    "DEFAULT_TEXT_MODEL",
    "LOSSES",
    "ArrayStore",
    "CLIPLoss",
    "CaptionAwareMNRLoss",
    "CellCaptionEvaluator",
    "CellTextReranker",
    "ClassifierHead",
    "EmbeddingStore",
    "MMContextEncoder",
    "MMContextProcessor",
    "ModelNotFoundError",
    "OmicsEncoder",
    "StoreIntegrityError",
    "TextPairMNRLoss",
    "load",
    "make_loss",
    "model_fingerprint",
    "open_store",
    "save_model",
    "write_store",
]
