"""CaptionAwareMNRLoss(gather_across_devices=True): two processes (gloo) give the loss of one global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch
    import torch.distributed as dist
    from mmcontext.models._losses import CaptionAwareMNRLoss

    class Identity(torch.nn.Module):
        def forward(self, features):
            features["sentence_embedding"] = features["input_values"]
            return features

    def batch(rows):
        g = torch.Generator().manual_seed(0)
        cells, texts = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
        ids = torch.tensor([[0], [1], [0], [2], [1], [3], [0], [2]])  # captions repeat, across processes too
        cells = cells[rows].clone().requires_grad_(True)
        return cells, [{"input_values": cells}, {"input_values": texts[rows], "input_ids": ids[rows]}]

    rank = int(os.environ.get("RANK", "-1"))
    if rank < 0:  # one process, the whole batch
        cells, features = batch(slice(0, 8))
        loss = CaptionAwareMNRLoss(Identity(), align=1.0)(features, None)
        loss.backward()
        print("RESULT " + json.dumps({"loss": loss.item(), "grad": cells.grad.tolist()}))
        sys.exit()
    dist.init_process_group("gloo")
    cells, features = batch(slice(4 * rank, 4 * rank + 4))
    loss = CaptionAwareMNRLoss(Identity(), align=1.0, gather_across_devices=True)(features, None)
    loss.backward()
    total = loss.detach().clone()
    dist.all_reduce(total)
    grads = [torch.zeros_like(cells.grad) for _ in range(2)]
    dist.all_gather(grads, cells.grad)
    if rank == 0:
        print("RESULT " + json.dumps({"loss": total.item() / 2, "grad": (torch.cat(grads) / 2).tolist()}))
    dist.destroy_process_group()
    """
)


def _run(tmp_path, processes: int) -> dict:
    script = tmp_path / "gather.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(script)]
    if processes > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *cmd[1:]]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return next(json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT "))


def test_gathered_negatives_equal_one_global_batch(tmp_path):
    single, gathered = _run(tmp_path, 1), _run(tmp_path, 2)
    # the mean of the processes' losses is the loss of the global batch, repeated captions masked across processes
    assert gathered["loss"] == pytest.approx(single["loss"], rel=1e-5)
    # each process differentiates its own cells (half the global batch, so half the anchors per mean):
    # the processes' gradients, averaged as DDP does, equal the global batch's
    flat = [x for row in gathered["grad"] for x in row]
    assert flat == pytest.approx([x for row in single["grad"] for x in row], abs=1e-6)
    assert any(abs(x) > 1e-4 for x in flat)
