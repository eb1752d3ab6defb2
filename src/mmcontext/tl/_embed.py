"""Joint embedding of cells, written to ``obsm``."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

from .. import _keys
from .._logging import log_added
from .._provenance import record, text_fingerprint
from .._settings import settings
from .._validation import check_adata, check_key_added, check_model, check_writable, get_obsm
from ..pp._prepare import init_key

if TYPE_CHECKING:
    from anndata import AnnData

    from ..models import MMContextEncoder


def model_fingerprint(model: MMContextEncoder) -> str:
    """A short content hash of the omics tower's weights and config: same hash, same cell embeddings."""
    h = hashlib.sha256()
    h.update(repr(sorted(model.omics_encoder.get_config_dict().items())).encode())
    for name, tensor in sorted(model.omics_encoder.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()[:16]


def model_provenance(model: MMContextEncoder) -> dict:
    """What identifies ``model`` in ``uns['mmcontext']``: name or path, fingerprint, dimensions."""
    return {
        "model": str(getattr(model, "mmc_source", "in-memory")),
        "model_fingerprint": model_fingerprint(model),
        "text_fingerprint": text_fingerprint(model),
        "text_model": str(model.model_card_data.base_model),
        "input_dim": model.input_dim,
        "embedding_dim": model.omics_encoder.output_dim,
    }


def cell_embeddings(adata: AnnData, model: MMContextEncoder, use_rep: str | None, batch_size: int | None) -> np.ndarray:
    """Embed the cells of ``adata`` from their initial embedding, checking it against the model."""
    key = init_key(adata, use_rep)
    X = get_obsm(adata, key, hint=" Run `mmc.pp.prepare(adata)` or pass `use_rep=`.")
    if X.shape[1] != model.input_dim:
        space = model.omics_encoder.input_space
        raise ValueError(
            f"adata.obsm[{key!r}] has {X.shape[1]} features but the model's omics tower expects {model.input_dim}"
            f"{f' (trained on {space})' if space else ''}. Prepare the data in the model's input space, "
            "e.g. `mmc.pp.prepare(adata, reference=model)`, or pass the matching `use_rep=`."
        )
    return model.encode_cells(X, batch_size=batch_size or settings.batch_size)


def embed(
    adata: AnnData,
    model: MMContextEncoder,
    *,
    use_rep: str | None = None,
    key_added: str = _keys.X_MMC,
    batch_size: int | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Embed cells into the joint cell-text space.

    Each cell's embedding depends only on its own initial embedding (not on the batch or the
    other cells), so embedding a subset gives the same rows.

    Parameters
    ----------
    adata
        Annotated data matrix with an initial embedding (see :func:`mmcontext.pp.prepare`).
    model
        A trained :class:`~mmcontext.models.MMContextEncoder`.
    use_rep
        ``obsm`` key of the initial embedding; default: the one :func:`~mmcontext.pp.prepare` recorded.
    key_added
        ``obsm`` key to write.
    batch_size
        Cells per forward pass (default :attr:`mmcontext.settings.batch_size`).
    copy
        Return a copy instead of writing into ``adata``.

    Returns
    -------
    ``None``, or a copy of ``adata`` when ``copy=True``, with

    ``adata.obsm[key_added]``
        float32 array, cells x embedding dimension, rows of unit length.
    ``adata.uns['mmcontext']['embed']``
        Model name/path and fingerprint, the initial embedding used, dimensions.

    Examples
    --------
    >>> mmc.tl.embed(adata, model)  # doctest: +SKIP
    >>> sc.pp.neighbors(adata, use_rep="X_mmc")  # doctest: +SKIP

    """
    check_adata(adata)
    check_writable(adata, copy=copy)
    check_model(model)
    check_key_added(key_added)
    emb = cell_embeddings(adata, model, use_rep, batch_size)
    adata = adata.copy() if copy else adata
    adata.obsm[key_added] = emb
    record(adata, "embed", {**model_provenance(model), "use_rep": init_key(adata, use_rep), "key_added": key_added})
    log_added((key_added, "obsm"))
    return adata if copy else None


def joint_embedding(adata: AnnData, model: MMContextEncoder, use_rep: str | None = None) -> np.ndarray:
    """Return the joint embedding of ``adata``'s cells: ``obsm['X_mmc']`` when this model wrote it, else computed."""
    prov = adata.uns.get(_keys.UNS, {}).get("embed", {})
    key = prov.get("key_added", _keys.X_MMC)
    if use_rep is None and key in adata.obsm and prov.get("model_fingerprint") == model_fingerprint(model):
        return np.asarray(adata.obsm[key], dtype=np.float32)
    return cell_embeddings(adata, model, use_rep, None)
