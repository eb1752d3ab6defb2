"""Precision, pinned memory and gathered negatives chosen from the device (logic only: runs on CPU)."""

from __future__ import annotations

import pytest

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
