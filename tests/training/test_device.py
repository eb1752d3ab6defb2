"""Precision, pinned memory and gathered negatives chosen from the device (logic only: runs on CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmcontext.models import OmicsEncoder
from mmcontext.training._device import loss_defaults, precision_args


@pytest.mark.parametrize(
    ("device", "precision", "bf16_ok", "expected"),
    [
        ("cpu", "auto", None, (False, False, False)),
        ("mps", "auto", None, (False, False, False)),
        ("cuda", "auto", True, (True, False, True)),
        ("cuda:1", "auto", False, (False, True, True)),
        ("cuda", "fp32", True, (False, False, True)),
        ("cuda", "fp16", True, (False, True, True)),
        ("cuda", "bf16", False, (True, False, True)),
    ],
)
def test_precision_follows_the_device(device, precision, bf16_ok, expected):
    args = precision_args(device, precision, bf16_supported=bf16_ok)
    assert (args["bf16"], args["fp16"], args["dataloader_pin_memory"]) == expected


def test_cuda_precision_on_cpu_and_unknown_precision_are_refused():
    with pytest.raises(ValueError, match="CUDA autocast"):
        precision_args("cpu", "bf16")
    with pytest.raises(ValueError, match="not one of"):
        precision_args("cpu", "fp8")


def test_train_rejects_an_unknown_precision(tiny):
    import mmcontext as mmc

    mmc.pp.prepare(tiny, ontology=False)
    with pytest.raises(ValueError, match="precision='half'"):
        mmc.tl.train(tiny, precision="half")


def test_negatives_are_gathered_only_data_parallel_on_cuda():
    assert loss_defaults("mnrl", "cuda:0", world_size=4) == {"gather_across_devices": True}
    assert loss_defaults("cached_mnrl", "cuda", world_size=2) == {"gather_across_devices": True}
    assert loss_defaults("mnrl", "cuda", world_size=1) == {}
    assert loss_defaults("mnrl", "cpu", world_size=2) == {}
    assert loss_defaults("triplet", "cuda", world_size=2) == {}


def test_chunked_scaler_matches_numpy_on_a_row_subset():
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 2.0, size=(1000, 6)).astype(np.float32)
    X[:, 5] = 1.0  # constant feature: scale 1
    rows = rng.permutation(1000)[:700]
    enc = OmicsEncoder(6, 4)
    enc.fit_scaler(X, rows, chunk_size=64)
    ref = X[rows].astype(np.float64)
    scale = ref.std(axis=0)
    scale[5] = 1.0
    assert torch.allclose(enc.input_mean, torch.as_tensor(ref.mean(axis=0), dtype=torch.float32), atol=1e-6)
    assert torch.allclose(enc.input_scale, torch.as_tensor(scale, dtype=torch.float32), atol=1e-6)
