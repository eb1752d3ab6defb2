"""MMContextTrainer's own steps: gradient clipping on one process."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from accelerate.utils import DistributedType

from mmcontext.training._trainer import MMContextTrainer


def _single_process_trainer() -> SimpleNamespace:
    """What ``MMContextTrainer._clip_grad_norm`` reads of a trainer on one process without loss scaling."""
    return SimpleNamespace(
        accelerator=SimpleNamespace(distributed_type=DistributedType.NO, scaler=None),
        args=SimpleNamespace(max_grad_norm=1.0),
    )


def test_single_process_clipping_clips_to_max_grad_norm_and_returns_the_norm_before():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    frozen = torch.nn.Linear(2, 2)
    model.append(frozen)
    for p in frozen.parameters():
        p.requires_grad = False
    torch.manual_seed(0)
    for p in model[:2].parameters():
        p.grad = torch.randn_like(p) * 10
    before = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in model[:2].parameters()]))
    trainer = _single_process_trainer()
    norm = MMContextTrainer._clip_grad_norm(trainer, model)
    after = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in model[:2].parameters()]))
    assert torch.isclose(norm, before) and before > 5
    assert torch.isclose(after, torch.tensor(1.0), atol=1e-5)
    assert all(p.grad is None for p in frozen.parameters())


def test_single_process_clipping_leaves_small_gradients_alone():
    model = torch.nn.Linear(4, 3)
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.01)
    grads = [p.grad.clone() for p in model.parameters()]
    trainer = _single_process_trainer()
    norm = MMContextTrainer._clip_grad_norm(trainer, model)
    assert torch.isclose(norm, torch.tensor(0.01 * 15**0.5))
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads, strict=True))


def test_lomo_check_is_asked_once_and_restored(monkeypatch):
    import accelerate.optimizer as optimizer_module

    from mmcontext._compat import cached_lomo_check

    calls = []
    monkeypatch.setattr(optimizer_module, "is_lomo_available", lambda: calls.append(1) or False)
    original = optimizer_module.is_lomo_available
    with cached_lomo_check():
        assert [optimizer_module.is_lomo_available() for _ in range(5)] == [False] * 5
    assert len(calls) == 1 and optimizer_module.is_lomo_available is original


def test_training_scores_a_subset_of_a_large_validation_split(monkeypatch):
    import gc

    from conftest import make_adata

    import mmcontext as mmc
    import mmcontext.tl._train as train_module

    monkeypatch.setattr(train_module, "SCORED_VALIDATION_CELLS", 7)
    adata = make_adata(200, 8)
    mmc.pp.prepare(adata, use_rep=None, caption_keys="cell_type", ontology=False)
    model = mmc.tl.train(adata, epochs=1, batch_size=16, validation_split=0.2, seed=0)
    record = adata.uns["mmcontext"]["train"]
    assert record["n_validation"] == 40 and record["n_train"] == 160
    assert (adata.obs["mmc_split"] == "validation").sum() == 40  # all of them stay out of training
    assert model.calibration["n_cells"] == 7
    assert any("eval_loss" in entry for entry in model.mmc_history)
    assert not gc.isenabled() or gc.get_freeze_count() == 0  # the trainer's gc.freeze() was undone


def test_a_callers_gc_freeze_is_left_alone(monkeypatch):
    import gc

    from transformers import Trainer

    seen = []
    monkeypatch.setattr(Trainer, "train", lambda self, *a, **k: seen.append(gc.get_freeze_count()) or "done")
    trainer = object.__new__(MMContextTrainer)
    assert MMContextTrainer.train(trainer) == "done" and seen[-1] > 0 and gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert MMContextTrainer.train(trainer) == "done"
        # still frozen after training (a few frozen objects may have been freed meanwhile; unfreeze would give 0)
        assert gc.get_freeze_count() > frozen // 2
    finally:
        gc.unfreeze()
