"""What a trained model's card says about its data: read from the AnnData and the training parameters."""

from __future__ import annotations

from typing import Any

from .. import _keys


def card_info(adata: Any, params: dict[str, Any], model: Any) -> dict[str, Any]:
    """What :func:`mmcontext.tl.train` records for the model card (plain JSON-like values)."""
    prep = adata.uns.get(_keys.UNS, {}).get("prepare", {}) if adata is not None else {}
    space = dict(getattr(model.omics_encoder, "input_space", {}) or {})
    arrays = getattr(model.omics_encoder, "input_arrays", {}) or {}
    caption_key = params.get("caption_key")
    examples = []
    if adata is not None and caption_key in adata.obs:
        examples = [str(c) for c in adata.obs[caption_key].astype(str).drop_duplicates().head(3)]
    history = getattr(model, "mmc_history", []) or []
    metrics = {
        k: float(v)
        for h in history
        for k, v in h.items()
        if k in ("eval_loss", "train_loss") and isinstance(v, (int, float, str)) and _is_number(v)
    }
    return {
        "data": (f"{adata.n_obs} cells x {adata.n_vars} genes; " if adata is not None else "a dataset by reference; ")
        + f"{params.get('n_train')} for training, {params.get('n_validation')} held out",
        "captions": (
            f"obs[{caption_key!r}] built from {dict(prep.get('caption_keys', {}) or {})!r}"
            if adata is not None
            else f"dataset column {caption_key!r}"
        ),
        "caption_examples": examples,
        "input_space": f"{space.get('method', 'obsm')} ({model.input_dim} features, obsm key "
        f"{space.get('obsm_key')!r}"
        + (f", {len(arrays['genes'])} genes carried in input_space.npz" if "genes" in arrays else "")
        + ")",
        "loss": params.get("loss", "mnrl"),
        "training": {
            k: params[k] for k in ("epochs", "batch_size", "learning_rate", "text_trainable", "seed") if k in params
        },
        "metrics": metrics,
    }


def _is_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True
