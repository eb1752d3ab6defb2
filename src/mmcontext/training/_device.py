"""Which numeric precision and data-loading options training uses on a device."""

from __future__ import annotations

from typing import Any

#: Accepted values of ``tl.train(precision=...)``.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def precision_args(device: str, precision: str = "auto", *, bf16_supported: bool | None = None) -> dict[str, Any]:
    """Training-argument overrides for ``precision`` on ``device`` (a torch device string).

    ``"auto"``: bf16 autocast on a CUDA device that supports it, else fp16 autocast (with loss scaling) on CUDA,
    full precision (fp32) elsewhere. ``"bf16"`` / ``"fp16"`` ask for that autocast and need CUDA; ``"fp32"`` never
    autocasts. Pinned host memory is used for the batches on CUDA only. ``bf16_supported`` defaults to what
    torch reports for the current CUDA device.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not one of {list(PRECISIONS)!r}.")
    cuda = str(device).split(":")[0] == "cuda"
    if precision in ("bf16", "fp16") and not cuda:
        raise ValueError(
            f"precision={precision!r} is a CUDA autocast mode but training runs on {device!r}; "
            "pass precision='fp32' (or 'auto') or train on a CUDA device."
        )
    if cuda and precision == "auto":
        if bf16_supported is None:
            import torch

            bf16_supported = torch.cuda.is_bf16_supported()
        precision = "bf16" if bf16_supported else "fp16"
    return {
        "bf16": cuda and precision == "bf16",
        "fp16": cuda and precision == "fp16",
        "dataloader_pin_memory": cuda,
    }


#: Losses whose in-batch negatives can be gathered from every process (``gather_across_devices``).
GATHER_LOSSES = ("mnrl", "cached_mnrl")


def loss_defaults(loss: str, device: str, world_size: int | None = None) -> dict[str, Any]:
    """Default loss options for ``loss`` on ``device`` with ``world_size`` processes (default: ``$WORLD_SIZE``).

    Data-parallel on CUDA, in-batch negatives are gathered from every process
    (sentence-transformers' ``gather_across_devices``), so each cell is contrasted with the captions of the
    global batch, not only its own process's share. On CPU (gloo) each process keeps its local negatives.
    """
    import os

    world_size = int(os.environ.get("WORLD_SIZE", "1")) if world_size is None else world_size
    cuda = str(device).split(":")[0] == "cuda"
    return {"gather_across_devices": True} if loss in GATHER_LOSSES and cuda and world_size > 1 else {}
