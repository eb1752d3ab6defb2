"""What ``mmc.tl.train`` reads from a dataset built by :func:`mmcontext.pp.build_dataset`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data._dataset_meta import dataset_meta, sampler_for
from ..data._store import open_store_spec

#: Rows of store vectors sampled to fit the omics tower's input scaler when training on a dataset.
SCALER_SAMPLE = 20_000

#: Losses that read ``(cell, caption, label)`` pairs; the others read ``(cell, caption[, negatives])``.
PAIR_LOSSES = ("contrastive",)


def training_inputs(dataset: Any, model: Any = None, *, loss: str | None = None) -> dict[str, Any]:
    """Everything ``mmc.tl.train`` needs from a :func:`build_dataset` result.

    Opens the stores, returns the train/eval datasets (multiplets re-draw negatives each epoch
    through a transform), the router mapping of the columns, the store dimension, a sample of
    training vectors for the input scaler, and a Trainer callback that advances the epoch.
    """
    from datasets import Dataset, DatasetDict

    if isinstance(dataset, Dataset):
        dataset = DatasetDict({"train": dataset})
    if not isinstance(dataset, DatasetDict) or "train" not in dataset:
        raise ValueError(
            "`dataset=` must be a Dataset or a DatasetDict with a 'train' split from `mmc.pp.build_dataset`."
        )
    train = dataset["train"]
    meta = dataset_meta(train)
    if loss is not None and (meta["shape"] == "pairs") != (loss in PAIR_LOSSES):
        fix = f"loss={PAIR_LOSSES[0]!r}" if meta["shape"] == "pairs" else "loss='mnrl' (or another non-pair loss)"
        raise ValueError(
            f"A {meta['shape']} dataset cannot train with loss={loss!r}; pass {fix}, or rebuild the "
            f"dataset with `shape={'multiplets' if meta['shape'] == 'pairs' else 'pairs'!r}`."
        )
    if model is not None and model.input_dim != meta["dim"]:
        raise ValueError(
            f"The dataset's stores hold {meta['dim']}-d vectors but the model's omics tower expects {model.input_dim}."
        )
    stores = {name: open_store_spec(spec) for name, spec in meta["stores"].items()}
    eval_ds = dataset.get("validation")
    mapping = {c: "text" for c in train.column_names if c == "caption" or c.startswith("negative_")}
    mapping["cell"] = "omics"
    samplers = []
    if meta["shape"] == "multiplets":
        train_sampler = sampler_for(train)
        train = train.with_transform(train_sampler.transform)
        samplers.append(train_sampler)
    # scaler sample: training cells' vectors, read from the stores
    rng = np.random.default_rng(meta["seed"])
    cells = np.asarray(dataset["train"]["cell"], dtype=object)
    cells = np.unique(cells)
    pick = cells[rng.choice(len(cells), size=min(len(cells), SCALER_SAMPLE), replace=False)]
    by_store: dict[str, list[str]] = {}
    for ref in pick:
        name, _, cell = str(ref).partition(":")
        by_store.setdefault(name, []).append(cell)
    X = np.concatenate([stores[n].rows(ids) for n, ids in by_store.items()])
    from ._callbacks import NegativesEpochCallback

    return {
        "train": train,
        "eval": eval_ds,
        "router_mapping": mapping,
        "stores": stores,
        "dim": int(meta["dim"]),
        "X_scaler": X,
        "callback": NegativesEpochCallback(samplers),
        "samplers": samplers,
        "shape": meta["shape"],
    }
