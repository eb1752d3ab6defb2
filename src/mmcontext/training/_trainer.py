"""SentenceTransformerTrainer with separate learning rates for the text tower and the adapters."""

from __future__ import annotations

import contextlib
import gc

import torch
from sentence_transformers import SentenceTransformerTrainer
from transformers.trainer_callback import ProgressCallback

from .._compat import cached_lomo_check


@contextlib.contextmanager
def _plain_text_route(model):
    """While active, the text route is the model's own modules (no training-time caption cache).

    Checkpoints are written and read in the layout of a saved model, so they load as one.
    """
    from ._text_cache import FrozenTextPrefix

    subs = model.router.sub_modules
    route = subs["text"]
    first = route[0] if len(route) else None
    if not isinstance(first, FrozenTextPrefix):
        yield
        return
    subs["text"] = torch.nn.Sequential(*first.inner, *list(route)[1:])
    try:
        yield
    finally:
        subs["text"] = route


class MMContextTrainer(SentenceTransformerTrainer):
    """Trainer whose optimizer gives the text encoder its own (smaller) learning rate."""

    def __init__(self, *args, text_learning_rate: float = 2e-5, **kwargs) -> None:
        self.text_learning_rate = text_learning_rate
        super().__init__(*args, **kwargs)

    def train(self, *args, **kwargs):
        # the Trainer's gc.collect() at the start (accelerate's free_memory) and the collections while training skip
        # the objects that existed before (the AnnData, the datasets): collecting them took 0.3 s at 200k cells
        # (a caller that froze objects itself, e.g. before forking workers, keeps its own freeze untouched)
        ours = gc.get_freeze_count() == 0
        if ours:
            gc.freeze()
        try:
            with cached_lomo_check():
                return super().train(*args, **kwargs)
        finally:
            if ours:
                gc.unfreeze()

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        # Multi-dataset training (train(text_pairs=...)) validates on its cells alone, a one-entry dict: evaluate it
        # by name under the plain prefix, so the log keeps "eval_loss" rather than "eval_cells_loss".
        if eval_dataset is None and isinstance(self.eval_dataset, dict) and len(self.eval_dataset) == 1:
            eval_dataset = next(iter(self.eval_dataset))
        return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)

    def _save(self, *args, **kwargs):
        with _plain_text_route(self.model):
            return super()._save(*args, **kwargs)

    def _load_from_checkpoint(self, *args, **kwargs):
        with _plain_text_route(self.model):
            return super()._load_from_checkpoint(*args, **kwargs)

    def _clip_grad_norm(self, model):
        # one process, no loss scaling: the same clipping in one foreach pass over the trainable parameters, without
        # accelerate's per-parameter DTensor and device-mesh checks on every step
        from accelerate.utils import DistributedType

        plain = self.accelerator.distributed_type == DistributedType.NO and self.accelerator.scaler is None
        if not plain:
            return super()._clip_grad_norm(model)
        params = [p for p in model.parameters() if p.grad is not None]
        if not params or params[0].device.type != "cpu":
            return torch.nn.utils.clip_grad_norm_(params, self.args.max_grad_norm, foreach=True)
        # on the CPU reading the norm costs no device sync: scale the gradients only when they are clipped
        total = torch.nn.utils.get_total_norm([p.grad for p in params], foreach=True)
        if total > self.args.max_grad_norm:
            torch.nn.utils.clip_grads_with_norm_(params, self.args.max_grad_norm, total, foreach=True)
        return total

    def _build_dataloader(self, dataset, batch_size: int, dataset_kind: str):
        # caption-table training: the stock loader's batch sampler, its rows read from numpy columns
        from datasets import Dataset

        from ._caption_table import IndexCollator, fast_loader

        loader = super()._build_dataloader(dataset, batch_size, dataset_kind)
        if isinstance(self.data_collator, IndexCollator) and isinstance(dataset, Dataset):
            return fast_loader(loader)
        return loader

    def create_optimizer(self, model=None):
        if self.optimizer is not None:
            return self.optimizer
        model = self.model
        text_params = {id(p) for p in model.text_modules[0].parameters()}
        groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            no_decay = p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name
            groups.setdefault((id(p) in text_params, no_decay), []).append(p)
        param_groups = [
            {
                "params": params,
                "lr": self.text_learning_rate if is_text else self.args.learning_rate,
                "weight_decay": 0.0 if no_decay else self.args.weight_decay,
            }
            for (is_text, no_decay), params in groups.items()
        ]
        # Parameters of the loss itself (e.g. the learnable temperature of CLIPLoss) train too.
        seen = {id(p) for p in model.parameters()}
        losses = self.loss.values() if isinstance(self.loss, dict) else [self.loss]
        extra = [
            p
            for loss in losses
            if isinstance(loss, torch.nn.Module)
            for p in loss.parameters()
            if p.requires_grad and id(p) not in seen
        ]
        if extra:
            param_groups.append({"params": extra, "lr": self.args.learning_rate, "weight_decay": 0.0})
        self.optimizer = torch.optim.AdamW(
            param_groups,
            lr=self.args.learning_rate,
            betas=(self.args.adam_beta1, self.args.adam_beta2),
            eps=self.args.adam_epsilon,
            fused=_fused_adamw(param_groups),
        )
        return self.optimizer


def _fused_adamw(param_groups: list[dict]) -> bool | None:
    """Use torch's fused AdamW kernel (one kernel for all parameters) where every parameter's device supports it."""
    params = [p for group in param_groups for p in group["params"]]
    supported = {"cpu", "cuda"}
    return True if params and all(p.device.type in supported and p.dtype.is_floating_point for p in params) else None


class BarOnlyProgress(ProgressCallback):
    """The Trainer's progress bar without its printed log dictionaries."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        return

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        """No second bar for each evaluation below the training bar (the epoch's eval is short)."""
        return
