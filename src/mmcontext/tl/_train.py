"""Contrastive training of an MMContextEncoder on an AnnData's cells and captions."""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import _keys, _model_attrs
from .._logging import logger
from .._provenance import record
from .._settings import settings
from .._validation import check_adata, check_model, check_number, check_writable, get_obsm
from ..pp._prepare import init_key
from ..training._checkpoints import checkpoint_dir, last_checkpoint, work_dir
from ..training._device import PRECISIONS, loss_defaults, precision_args
from ._train_inputs import (
    SCORED_VALIDATION_CELLS,
    caption_cells,
    fit_model_calibration,
    negative_labels,
    space_from_prepare,
    use_caption_table,
    validation_evaluator,
)

if TYPE_CHECKING:
    from anndata import AnnData
    from datasets import Dataset

    from ..models import MMContextEncoder

#: Name of the in-memory store the training cells are registered under.
TRAIN_STORE = "train"


def train(
    adata: AnnData | None = None,
    *,
    dataset: Any = None,
    caption_key: str | None = None,
    use_rep: str | None = None,
    model: MMContextEncoder | None = None,
    text_model: str | None = None,
    epochs: int = 10,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    text_learning_rate: float = 2e-5,
    text_trainable: bool | int | str = False,
    text_pairs: str | Sequence[tuple[str, str]] | Dataset | None = None,
    loss: str = "mnrl",
    matryoshka_dims: list[int] | None = None,
    loss_kwargs: dict[str, Any] | None = None,
    hidden_dim: int = 512,
    n_layers: int = 2,
    dropout: float = 0.1,
    validation_split: float = 0.1,
    output_dir: str | os.PathLike | None = None,
    save_steps: int | None = None,
    resume: bool = False,
    keep_best: bool = False,
    seed: int = 0,
    device: str | None = None,
    precision: str = "auto",
    **training_args: Any,
) -> MMContextEncoder:
    """Align cells and their captions by contrastive training.

    Each training example is a cell (by reference, resolved from ``adata.obsm`` by the model's
    processor) and its caption; the loss is MultipleNegativesRankingLoss with repeated captions
    removed from the negatives (:class:`~mmcontext.models.CaptionAwareMNRLoss`). Training runs
    through the stock ``SentenceTransformerTrainer``.

    Parameters
    ----------
    adata
        Annotated data matrix with an initial embedding and captions (see :func:`mmcontext.pp.prepare`).
        Train on a subset by passing ``adata[mask].copy()``. Not needed with ``dataset=``.
    dataset
        A ``DatasetDict`` (or its train ``Dataset``) from :func:`mmcontext.pp.build_dataset`: cells by
        reference into embedding stores (opened here and remembered in the model), its validation
        split for evaluation; multiplets re-draw their negatives each epoch. Pairs need
        ``loss="contrastive"``. ``caption_key``, ``use_rep`` and ``validation_split`` are then unused.
    caption_key
        ``obs`` column of captions; default: the one :func:`~mmcontext.pp.prepare` wrote.
        Cells with a missing caption are left out.
    use_rep
        ``obsm`` key of the initial embedding; default: the one :func:`~mmcontext.pp.prepare` recorded.
    model
        Continue training this model instead of building a new one.
    text_model
        Sentence-transformers model name or path for the text tower of a new model
        (default: the bundled all-MiniLM-L6-v2).
    epochs, batch_size
        Training length and batch size.
    learning_rate
        Learning rate of the omics tower (and a text adapter).
    text_learning_rate
        Learning rate of the text layers that train (``text_trainable``).
    text_trainable
        ``False`` (default) freezes the text tower; ``True`` trains all of it; an ``int`` trains its top n layers.
    text_pairs
        Extra text-to-text training pairs that teach the text tower cell type vocabulary while it trains:
        ``"ontology"`` (Cell Ontology ``(synonym, name)``, ``(definition, name)`` and ``(name, ancestor)`` pairs of the
        terms matching the training cells' cell type labels -- the column the captions were built from -- and of all
        their ancestors), a sequence of ``(text_a, text_b)`` pairs, or a ``datasets.Dataset`` with two text columns.
        They train with in-batch negatives (:class:`~mmcontext.models.TextPairMNRLoss`, texts repeated across pairs
        not counted as negatives) in batches of their own, next to the cell-caption batches (sentence-transformers
        multi-dataset training, batches drawn in proportion to each dataset's size; ``loss_kwargs`` apply to the
        cell-caption loss only). Needs a text tower that trains: with ``text_trainable=False`` a ValueError asks
        for ``text_trainable=2`` (top two layers) or ``True``. Default ``None``: cell-caption pairs only.
    loss
        ``"mnrl"`` (default; in-batch negatives, repeated captions not counted as negatives, plus a term pulling
        each cell onto its caption's embedding so free-text queries behave like caption queries), ``"cached_mnrl"``
        (the same with gradient caching: large batches on small memory), ``"contrastive"`` (each cell paired with
        its caption, label 1, and with a caption of another cell type, label 0), ``"triplet"`` (cell, caption, a caption
        of another cell type: the negatives :func:`mmcontext.pp.build_dataset` draws)
        or ``"clip"`` (symmetric cells<->captions loss with a learnable temperature);
        see :func:`mmcontext.models.make_loss`.
    matryoshka_dims
        Also train embeddings truncated to these sizes (``MatryoshkaLoss``), e.g. ``[64, 128]``; use them with
        ``model.truncate_dim`` or ``encode(..., truncate_dim=...)``.
    loss_kwargs
        Options of the loss (e.g. ``{"scale": 30}`` for ``"mnrl"``, ``{"temperature": 0.05}`` for ``"clip"``).
    hidden_dim, n_layers, dropout
        Shape of a new omics tower.
    validation_split
        Fraction of cells held out to report validation metrics each epoch and, after training, to calibrate the
        label probabilities of :func:`mmcontext.tl.annotate` (0 to skip both). Of a larger split, a random
        10,000 of the held-out cells are scored (the rest stay out of training too).
    output_dir
        Save the trained model here (``save_pretrained`` layout), replacing the folder atomically.
    save_steps
        Write a checkpoint (weights, optimizer, scheduler, RNG states) every this many steps into
        ``<output_dir>.checkpoints/`` (needs ``output_dir``); the folder is removed once the final model is saved.
    resume
        Continue from the last complete checkpoint in ``<output_dir>.checkpoints/`` (a run that was
        interrupted); with the same data, seed and options the final weights equal those of an uninterrupted run.
        Without a checkpoint, training starts from the beginning.
    keep_best
        Return the weights of the epoch whose validation cells best retrieved their own captions
        (:class:`~mmcontext.models.CellCaptionEvaluator` accuracy; kept in memory) instead of the last epoch's.
        Needs a validation split; cannot be combined with ``resume``.
    seed
        Seed for the split, the initial weights, shuffling and dropout.
    device
        Torch device of a new model; default from :attr:`mmcontext.settings.device` (``"auto"``: CUDA, then MPS,
        then CPU).
    precision
        ``"auto"`` (default): bf16 autocast on a CUDA device that supports it, fp16 autocast on other CUDA
        devices, full precision elsewhere; or ``"fp32"``, ``"bf16"``, ``"fp16"`` (the last two need CUDA).
        The weights stay float32 and the saved model is the same either way.
    **training_args
        Passed to ``SentenceTransformerTrainingArguments`` (e.g. ``warmup_ratio``, ``weight_decay``).
        Launched with ``torchrun`` / ``accelerate launch``, training is data-parallel across the processes
        (``batch_size`` per process; only the first writes ``output_dir``); see the atlas guide.

    Returns
    -------
    The trained :class:`~mmcontext.models.MMContextEncoder`; its training log is in ``model.mmc_history``
    (also written to ``output_dir/training_history.json``). Writes ``adata.obs['mmc_split']`` (categorical
    ``"train"``, ``"validation"``, or ``"unseen"`` for cells without a caption): which cells trained the model; the
    model keeps their names, so :func:`mmcontext.tl.embed` on a larger AnnData holding them (the full data a
    subset copy was taken from) marks them there too. Records the parameters in
    ``adata.uns['mmcontext']['train']`` (``split_key``, ``n_train``, ``n_validation``, ``n_unseen``, ...),
    ``text_pairs`` among them: ``None``, or a dict with ``"kind"``
    (``"ontology"``, ``"pairs"`` or ``"dataset"``) and ``"n_pairs"`` (for ``"ontology"`` also ``cell_type_key``,
    ``n_terms``, ``n_labels_matched`` and the ``unmatched`` labels), and ``calibration``: ``scale``, ``weight`` and
    ``n_cells`` of the label-probability calibration fitted on the validation cells after training
    (:attr:`~mmcontext.models.MMContextEncoder.calibration`, used by :func:`mmcontext.tl.annotate`; ``None``
    without validation cells).

    Examples
    --------
    >>> model = mmc.tl.train(adata, epochs=5)  # doctest: +SKIP
    >>> model = mmc.tl.train(adata, text_trainable=2, text_pairs="ontology")  # doctest: +SKIP

    """
    if model is not None:
        check_model(model)
    ds_in = None
    if dataset is not None:  # a DatasetDict from mmc.pp.build_dataset: cells by reference into its stores
        from ..training._inputs import training_inputs

        ds_in = training_inputs(dataset, model, loss=loss)
        key, caption_key, X = None, "caption", ds_in["X_scaler"]
        ok = np.ones(len(X), dtype=bool)
    else:
        check_adata(adata, min_obs=2)
        check_writable(adata, copy=False, offer_copy=False)  # train records into adata.uns
        key = init_key(adata, use_rep)
        X = get_obsm(adata, key, hint=" Run `mmc.pp.prepare(adata)` or pass `use_rep=`.")
        caption_key, ok = caption_cells(adata, caption_key)
        if model is not None and model.input_dim != X.shape[1]:
            raise ValueError(
                f"adata.obsm[{key!r}] has {X.shape[1]} features but the model's omics tower expects {model.input_dim}."
            )
    validation_split = check_number(validation_split, what="validation_split", low=0.0)
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not one of {list(PRECISIONS)!r}.")
    if not 0 <= validation_split < 1:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split}.")
    from ..models._losses import check_loss

    check_loss(loss, matryoshka_dims)
    epochs = check_number(epochs, what="epochs", integer=True, low=1)
    batch_size = check_number(batch_size, what="batch_size", integer=True, low=2)
    check_number(learning_rate, what="learning_rate", low=0.0, low_open=True, none=True)
    if (save_steps is not None or resume) and output_dir is None:
        raise ValueError(
            "save_steps= and resume=True need output_dir=: checkpoints are kept in '<output_dir>.checkpoints'."
        )
    if keep_best and resume:
        raise ValueError("keep_best=True cannot resume: the best weights seen before the interruption are not saved.")
    if save_steps is not None and (isinstance(save_steps, bool) or not isinstance(save_steps, int) or save_steps < 1):
        raise ValueError(f"save_steps must be a positive int (steps between checkpoints), got {save_steps!r}.")
    if n_skipped := int((~ok).sum()):
        logger.warning(
            "%d cells have no caption in adata.obs[%r]; they are left out of training.", n_skipped, caption_key
        )
    pairs_ds = pairs_info = None
    if text_pairs is not None:
        from ._text_pairs import build_text_pairs

        pairs_ds, pairs_info = build_text_pairs(
            text_pairs,
            text_trainable=text_trainable,
            adata=adata,
            caption_key=caption_key if ds_in is None else None,
            cells=ok if ds_in is None else None,
        )

    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainingArguments
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from ..models import ArrayStore, MMContextEncoder
    from ..models._losses import loss_columns, make_loss
    from ..training._caption_table import CaptionTable
    from ..training._keep_best import KeepBestCallback
    from ..training._text_cache import cached_frozen_text, frozen_text_route
    from ..training._trainer import BarOnlyProgress, MMContextTrainer

    rng = np.random.default_rng(seed)
    cells = np.flatnonzero(ok)
    rng.shuffle(cells)
    n_val = round(validation_split * len(cells)) if len(cells) >= 20 else 0
    val_cells, train_cells = cells[:n_val], cells[n_val:]
    scored_cells = val_cells[:SCORED_VALIDATION_CELLS]  # validation loss, metrics and calibration (a random subset)
    if ds_in is not None:  # X holds a sample of the training cells, for the input scaler
        train_cells, n_val = np.arange(len(X)), len(ds_in["eval"] or [])

    if model is None:
        space = (
            {"obsm_key": key, **space_from_prepare(adata, key)}
            if ds_in is None
            else {"stores": sorted(ds_in["stores"])}
        )
        model = MMContextEncoder.build(
            X.shape[1],
            text_model=text_model,
            hidden_dim=hidden_dim,
            n_layers=n_layers,
            dropout=dropout,
            input_space=space,
            device=device,
            seed=seed,
        )
        model.omics_encoder.fit_scaler(X, train_cells)
        from ..pp._reference import space_from_adata

        if ds_in is None and (gene_space := space_from_adata(adata, key)) is not None:
            model.omics_encoder.set_input_arrays(**gene_space.arrays())
    model.set_text_trainable(text_trainable)

    if ds_in is None:
        names = adata.obs_names.to_numpy().astype(str)
        captions = adata.obs[caption_key].astype(object).to_numpy()
        # the labels negatives must differ from, for the losses that draw negatives
        labels = negative_labels(adata, caption_key, captions, ok) if loss in _keys.NEGATIVE_LOSSES else None
        model.processor.add_store(ArrayStore(TRAIN_STORE, names, X))
    else:
        for file_store in ds_in["stores"].values():  # remembered in the model's config, re-opened after loading
            model.processor.add_store(file_store)

    def columns(idx: np.ndarray, cells: list) -> dict[str, list]:
        cell_labels = None if labels is None else list(labels[idx])
        return loss_columns(loss, cells, [str(c) for c in captions[idx]], labels=cell_labels, seed=seed)

    def dataset(idx: np.ndarray) -> Dataset:
        return Dataset.from_dict(columns(idx, _refs(model, names[idx])))

    # frozen text: each distinct caption is encoded once and batches are gathered by row index (same steps)
    table = use_caption_table(model, ds_in, pairs_ds)
    collator = None
    if table:
        from ..training._caption_table import IndexCollator, caption_codes, index_columns

        distinct, inverse = np.unique(np.asarray(captions[cells], dtype=object).astype(str), return_inverse=True)
        codes, table = caption_codes(model, distinct)
        rows = np.zeros(len(captions), dtype=np.int64)  # each cell's caption table row
        rows[cells] = codes[inverse]

        by_text = dict(zip(distinct.tolist(), codes.tolist(), strict=True))

        def index_dataset(idx: np.ndarray) -> Dataset:
            if loss in _keys.NEGATIVE_LOSSES:  # negatives drawn among the captions
                return Dataset.from_dict(index_columns(columns(idx, idx.tolist()), by_text))
            return Dataset.from_dict({"cell": idx.astype(np.int64), "caption": rows[idx]})

        train_ds = index_dataset(train_cells)
        eval_ds = index_dataset(scored_cells) if n_val else None
        eval_cols = columns(scored_cells, _refs(model, names[scored_cells])) if n_val else None
        collator = IndexCollator(preprocess_fn=model.preprocess, X=model.processor.stores[TRAIN_STORE].X)
    else:
        train_ds = dataset(train_cells) if ds_in is None else ds_in["train"]
        eval_ds = (dataset(scored_cells) if n_val else None) if ds_in is None else ds_in["eval"]
        eval_cols = eval_ds
    steps_per_epoch = math.ceil(len(train_ds) / batch_size)
    router_mapping = ds_in["router_mapping"] if ds_in else {"cell": "omics", "caption": "text", "negative": "text"}
    if collator is not None:
        collator.router_mapping = router_mapping
    evaluator = validation_evaluator(eval_cols)
    loss_opts = {**loss_defaults(loss, str(model.device)), **(loss_kwargs or {})}
    loss_fn = make_loss(loss, model, matryoshka_dims=matryoshka_dims, **loss_opts)
    if pairs_ds is not None:  # a second dataset and loss: text pairs train the text tower in batches of their own
        from ._text_pairs import with_text_pairs

        steps_per_epoch += math.ceil(len(pairs_ds) / batch_size)
        train_ds, eval_ds, router_mapping, loss_fn = with_text_pairs(
            train_ds, eval_ds, router_mapping, loss_fn, pairs_ds, model, matryoshka_dims=matryoshka_dims
        )
    ckpt_dir = checkpoint_dir(output_dir) if save_steps is not None or resume else None
    last = last_checkpoint(ckpt_dir) if resume else None
    if resume:
        logger.info("resuming from %s", last) if last else logger.warning(
            "resume=True but no complete checkpoint in %s; training from the start.", ckpt_dir
        )
    with work_dir(ckpt_dir) as tmp:
        args = SentenceTransformerTrainingArguments(
            output_dir=tmp,
            num_train_epochs=epochs,
            per_device_train_batch_size=batch_size,
            per_device_eval_batch_size=batch_size,
            learning_rate=learning_rate,
            warmup_steps=training_args.pop("warmup_steps", 0.1),
            seed=seed,
            data_seed=seed,
            router_mapping=router_mapping,
            eval_strategy="epoch" if eval_ds is not None else "no",
            save_strategy="steps" if save_steps else "no",
            save_steps=save_steps or 500,
            save_total_limit=training_args.pop("save_total_limit", 2),
            # multi-process (torchrun / accelerate launch): cells and captions take separate forward calls per step,
            # which DDP's search for unused parameters cannot follow; every trainable parameter is used anyway
            ddp_find_unused_parameters=training_args.pop("ddp_find_unused_parameters", False),
            logging_steps=max(1, steps_per_epoch // 4),
            report_to="none",
            disable_tqdm=not settings.progress,
            use_cpu=str(model.device) == "cpu",
            **{**precision_args(str(model.device), precision), **training_args},
        )
        keeper = KeepBestCallback(model, f"eval_{evaluator.primary_metric}") if keep_best and evaluator else None
        if keep_best and keeper is None:
            raise ValueError("keep_best=True needs validation cells: set validation_split > 0 (or a validation split).")
        if not model.model_card_data.widget:
            # distinct training captions as the card's examples; sentence-transformers would otherwise sample the
            # (repetitive) training pairs behind a "Computing widget examples" progress bar
            seen = captions[train_cells] if ds_in is None else ds_in["train"][:5000]["caption"]
            distinct = [str(c) for c in pd.unique(np.asarray(seen, dtype=object))[:4]]
            if distinct:
                model.model_card_data.widget = [{"source_sentence": distinct[0], "sentences": distinct[1:]}]
                model.model_card_data.usage_examples = distinct[:3]
        trainer = MMContextTrainer(
            model=model,
            args=args,
            train_dataset=train_ds,
            eval_dataset=eval_ds,
            evaluator=evaluator,
            loss=loss_fn,
            text_learning_rate=text_learning_rate,
            callbacks=[c for c in (ds_in and ds_in["callback"], keeper) if c] or None,
            data_collator=collator,
        )
        # log lines go to model.mmc_history (see pl.training), not stdout; the progress bar stays
        trainer.remove_callback(PrinterCallback)
        if trainer.pop_callback(ProgressCallback) is not None:
            trainer.add_callback(BarOnlyProgress)
        try:
            route = (
                frozen_text_route(model, lambda modules: CaptionTable(modules, table))
                if collator is not None
                else cached_frozen_text(model)
            )
            with route:
                trainer.train(resume_from_checkpoint=last)
                if keeper is not None:
                    keeper.restore()
            model.eval()
            model.calibration = fit_model_calibration(
                model, evaluator, captions[train_cells] if ds_in is None else ds_in["train"]
            )
        finally:
            model.processor.remove_store(TRAIN_STORE)
    history = [dict(entry) for entry in trainer.state.log_history]
    params = {
        "caption_key": caption_key,
        "use_rep": key,
        "n_train": len(train_cells),
        "n_validation": n_val,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "text_trainable": str(text_trainable),
        "loss": loss,
        "matryoshka_dims": list(matryoshka_dims or []),
        "text_pairs": pairs_info,
        "text_model": str(model.model_card_data.base_model),
        "seed": seed,
        "best_epoch": keeper.best_epoch if keeper else None,
        "calibration": {k: model.calibration[k] for k in ("scale", "weight", "n_cells")} if model.calibration else None,
    }
    _model_attrs.set_trained(model, history=history, params=params)
    from ._card import card_info

    _model_attrs.set_card(model, card_info(adata, params, model))
    if output_dir is not None:
        from ..models._io import save_model

        if trainer.is_world_process_zero():  # one writer when several processes train (torchrun)
            save_model(model, output_dir)
            if ckpt_dir is not None:
                shutil.rmtree(ckpt_dir, ignore_errors=True)
        trainer.accelerator.wait_for_everyone()
        params["output_dir"] = os.fspath(output_dir)
    params["resumed_from"] = os.path.basename(last) if last else None
    if ds_in is not None:
        params.update(n_train=len(train_ds), dataset_shape=ds_in["shape"], stores=sorted(ds_in["stores"]))
    if adata is not None:
        from ._split import remember_split

        params.update(remember_split(model, adata, train_cells, val_cells))  # obs['mmc_split']
        record(adata, "train", params)
    logger.info("trained on %d cells for %d epochs (%d steps)", len(train_cells), epochs, trainer.state.global_step)
    return model


def _refs(model: MMContextEncoder, names: np.ndarray) -> list[str]:
    """References of these training cells (``model.processor.ref`` of each name, built as one prefix)."""
    prefix = model.processor.ref(TRAIN_STORE, "")
    return [prefix + name for name in names.tolist()]
