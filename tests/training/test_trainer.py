"""MMContextTrainer's own steps: gradient clipping on one process."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from accelerate.utils import DistributedType

from mmcontext.training._trainer import MMContextTrainer


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
    trainer = SimpleNamespace(
        accelerator=SimpleNamespace(distributed_type=DistributedType.NO, scaler=None),
        args=SimpleNamespace(max_grad_norm=1.0),
    )
    norm = MMContextTrainer._clip_grad_norm(trainer, model)
    after = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in model[:2].parameters()]))
    assert torch.isclose(norm, before) and before > 5
    assert torch.isclose(after, torch.tensor(1.0), atol=1e-5)
    assert all(p.grad is None for p in frozen.parameters())
