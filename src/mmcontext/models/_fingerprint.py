"""A stable content hash of a model's cell tower: same fingerprint, same cell embeddings."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._encoder import MMContextEncoder


def model_fingerprint(model: MMContextEncoder) -> str:
    """A short content hash (16 hex digits) of the omics tower's config and weights.

    Cell embeddings depend only on the omics tower, so two models with the same fingerprint embed every cell
    identically; it is recorded with every result built from cell embeddings (``uns['mmcontext'][...]``,
    saved indexes) and checked when they are reused.

    Examples
    --------
    >>> mmc.models.model_fingerprint(model)  # doctest: +SKIP
    '3f9a0c1d2b4e5f60'

    """
    h = hashlib.sha256()
    h.update(repr(sorted(model.omics_encoder.get_config_dict().items())).encode())
    for name, tensor in sorted(model.omics_encoder.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()[:16]
