"""What a trained model's card says about its data: read from the AnnData and the training parameters."""

from __future__ import annotations

from typing import Any

from .. import _model_attrs
from .._provenance import find_record


def card_info(adata: Any, params: dict[str, Any], model: Any) -> dict[str, Any]:
    """What :func:`mmcontext.tl.train` records for the model card (plain JSON-like values)."""
    prep = find_record(adata, "prepare") if adata is not None else {}
    space = dict(getattr(model.omics_encoder, "input_space", {}) or {})
    arrays = getattr(model.omics_encoder, "input_arrays", {}) or {}
    caption_key = params.get("caption_key")
    examples = []
    if adata is not None and caption_key in adata.obs:
        examples = [str(c) for c in adata.obs[caption_key].astype(str).drop_duplicates().head(3)]
    history = _model_attrs.history(model) or []
    metrics = {  # the last value of each: training loss, validation loss and the evaluator's metrics
        k: float(v)
        for h in history
        for k, v in h.items()
        if (k == "train_loss" or k.startswith("eval_"))
        and not k.endswith(("_runtime", "_per_second"))
        and _is_number(v)
    }
    for k, v in (params.get("calibration") or {}).items():
        if _is_number(v):
            metrics[f"calibration_{k}"] = float(v)
    omics = model.omics_encoder
    label_columns = [str(c) for c in dict(prep.get("caption_keys", {}) or {}).values()]
    return {
        "data": (f"{adata.n_obs} cells x {adata.n_vars} genes; " if adata is not None else "a dataset by reference; ")
        + f"{params.get('n_train')} for training, {params.get('n_validation')} held out",
        "captions": (
            f"obs[{caption_key!r}] built from {dict(prep.get('caption_keys', {}) or {})!r}"
            if adata is not None
            else f"dataset column {caption_key!r}"
        ),
        "caption_examples": examples,
        "label_columns": label_columns,
        "encoding": f"each cell's initial embedding ({model.input_dim} values, obsm key {space.get('obsm_key')!r}) "
        f"goes through the omics route: an MLP adapter ({getattr(omics, 'n_layers', '?')} layers of "
        f"{getattr(omics, 'hidden_dim', '?')}) into the text model's {omics.output_dim}-d space, then L2-normalised; "
        f"texts go through the text tower ({model.model_card_data.base_model}). Cells: `mmc.tl.embed(adata, model)` "
        "or `model.encode(X.tolist(), task='omics')`; texts: `model.encode(texts)`",
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
