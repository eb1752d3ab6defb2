"""Reading back the mmcontext metadata a built training dataset carries in ``info.description``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .. import _keys
from ._negatives import NegativeSampler

if TYPE_CHECKING:
    from datasets import Dataset

#: Dataset shapes :func:`mmcontext.pp.build_dataset` writes.
SHAPES = ("pairs", "multiplets")


def dataset_meta(dataset: Dataset) -> dict[str, Any]:
    """The mmcontext metadata :func:`build_dataset` stored in ``dataset.info.description``."""
    try:
        meta = json.loads(dataset.info.description or "")[_keys.DATASET_META]
    except (ValueError, KeyError, TypeError):
        raise ValueError(
            "This dataset was not made by `mmc.pp.build_dataset` (no mmcontext metadata in `info.description`); "
            "build it with `mmc.pp.build_dataset(adata, store_dir)`."
        ) from None
    return meta


def sampler_for(dataset: Dataset) -> NegativeSampler | None:
    """The negative sampler of a multiplets dataset (``None`` for pairs), rebuilt from its metadata."""
    meta = dataset_meta(dataset)
    if meta["shape"] != "multiplets":
        return None
    return NegativeSampler(
        meta["caption_labels"],
        n_negatives=meta["n_negatives"],
        hard=meta["hard_negatives"],
        pool=meta["negative_pool"],
        seed=meta["seed"],
    )
