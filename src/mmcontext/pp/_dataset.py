"""Training datasets by reference: cells as ``"<store>:<cell>"`` strings, vectors in embedding stores."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from .. import _keys
from .._docs import doc_params
from .._logging import logger
from .._validation import check_adata, check_number, get_obs_column, get_obsm
from ..data._dataset_meta import SHAPES, sampler_for
from ..data._negatives import NegativeSampler
from ..data._splits import assign_splits
from ..data._store import write_store
from ._captions import caption_column, cell_type_column
from ._prepare import init_key

if TYPE_CHECKING:
    from anndata import AnnData
    from datasets import Dataset, DatasetDict


# -- labels and captions --------------------------------------------------------------------------
def _label_key(adata: AnnData, label_key: str | None, caption_key: str) -> str:
    """The labels negatives are drawn by: :func:`~mmcontext.pp._captions.cell_type_column`, else the captions."""
    return cell_type_column(adata, caption_key, label_key=label_key) or caption_key


def _texts(col: pd.Series) -> np.ndarray:
    vals = col.astype(object).to_numpy()
    return np.array([v.strip() if isinstance(v, str) else "" for v in vals], dtype=object)


# -- the builder ----------------------------------------------------------------------------------
@doc_params("use_rep_prepared")
def build_dataset(
    adata: AnnData | Sequence[AnnData] | Mapping[str, AnnData],
    store_dir: str | os.PathLike,
    *,
    shape: Literal["pairs", "multiplets"] = "multiplets",
    caption_key: str | None = None,
    label_key: str | None = None,
    use_rep: str | None = None,
    split_by: str | None = None,
    validation_size: float = 0.1,
    test_size: float = 0.0,
    n_negatives: int = 1,
    hard_negatives: bool = False,
    negative_pool: int | None = None,
    seed: int = 0,
) -> DatasetDict:
    """Build a training dataset of cell references and captions from one or several AnnData objects.

    The initial embeddings of each AnnData are written once to an embedding store under
    ``store_dir`` (see :func:`mmcontext.models.write_store`); the dataset holds only references
    ``"<store>:<obs_name>"``, resolved to vectors by the model's processor. Train on it with
    ``mmc.tl.train(dataset=...)``, which opens the stores and remembers them in the model.

    Columns (all strings but ``label``):

    * ``shape="multiplets"``: ``cell`` (anchor cell reference), ``caption`` (its caption),
      ``negative_1`` ... ``negative_<n>`` (captions of other cell types) - for
      MultipleNegativesRankingLoss / TripletLoss. During training the negatives are drawn afresh
      each epoch; the stored columns are the epoch-0 draw.
    * ``shape="pairs"``: ``cell``, ``caption``, ``label`` (float: 1.0 the cell's own caption, 0.0 a
      sampled caption of another cell type; ``n_negatives`` such rows per cell) - for
      ContrastiveLoss / CoSENT-style losses.

    A negative caption is never the anchor's caption and is never carried by a cell with the
    anchor caption's label (``label_key``), so two captions of the same cell type are not
    negatives of each other.

    Parameters
    ----------
    adata
        One AnnData, a list (stores named ``adata0``, ``adata1``, ...), or a mapping of store
        name to AnnData.
    store_dir
        Folder for the embedding stores, one subfolder per AnnData. An existing store with the
        same content is reused, not rewritten.
    shape
        ``"multiplets"`` or ``"pairs"``.
    caption_key
        ``obs`` column of captions; default: the one :func:`~mmcontext.pp.prepare` wrote. Cells with
        an empty caption are left out.
    label_key
        ``obs`` column of the cell type that decides which captions are truly different; default:
        the cell-type column the captions were built from, else a known cell-type column, else
        the caption itself.
    use_rep
        {use_rep_prepared}
    split_by
        ``obs`` column (donor, sample, batch) whose values are never split between train,
        validation and test; ``None``: cells are split at random.
    validation_size, test_size
        Approximate fractions of cells in the validation and test splits (0 omits the split).
    n_negatives
        Negative captions per anchor (multiplets: columns; pairs: rows per cell).
    hard_negatives
        Draw negatives from the ``negative_pool`` valid captions most similar to the anchor's.
    negative_pool
        Hard-negative pool size; default ``3 * n_negatives``.
    seed
        Seed for the split and the negatives.

    Returns
    -------
    A ``datasets.DatasetDict`` with ``train`` and, when their sizes are > 0, ``validation`` and
    ``test`` splits. Each split's ``info.description`` holds JSON (key ``"mmcontext"``) with the
    stores (name -> source and sha256), the shape, the negative-sampling parameters and each
    caption's labels, so a dataset saved with ``save_to_disk`` and reloaded trains the same way.
    Writes one store folder per AnnData under ``store_dir``; the AnnData objects are not changed.

    Examples
    --------
    >>> ds = mmc.pp.build_dataset(adata, "stores", split_by="donor_id", n_negatives=2)  # doctest: +SKIP
    >>> model = mmc.tl.train(dataset=ds, epochs=3)  # doctest: +SKIP

    """
    # -- validate everything before writing ------------------------------------------------------
    from anndata import AnnData

    if isinstance(adata, AnnData):
        named = {"adata0": adata}
    elif isinstance(adata, Mapping):
        named = {str(k): v for k, v in adata.items()}
    elif isinstance(adata, Sequence) and not isinstance(adata, str):
        named = {f"adata{i}": a for i, a in enumerate(adata)}
    else:
        raise TypeError(f"Expected an AnnData, a list or a dict of AnnData, got {type(adata).__name__}.")
    if not named:
        raise ValueError("No AnnData given.")
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}.")
    n_negatives = check_number(n_negatives, what="n_negatives", integer=True, low=1)
    negative_pool = check_number(negative_pool, what="negative_pool", integer=True, low=1, none=True)
    validation_size = check_number(validation_size, what="validation_size")
    test_size = check_number(test_size, what="test_size")
    seed = check_number(seed, what="seed", integer=True)
    if not (0 <= validation_size < 1 and 0 <= test_size < 1 and validation_size + test_size < 1):
        raise ValueError(
            f"validation_size and test_size must be in [0, 1) with a sum < 1, got {validation_size}, {test_size}."
        )
    if negative_pool is not None and negative_pool < n_negatives:
        raise ValueError(f"negative_pool ({negative_pool}) must be >= n_negatives ({n_negatives}).")
    parts = []
    dims = {}
    for name, ad in named.items():
        if ":" in name or not name:
            raise ValueError(f"Store name {name!r} must be non-empty and contain no ':'.")
        check_adata(ad, min_obs=1)
        ckey = caption_column(ad, caption_key)
        lkey = _label_key(ad, label_key, ckey)
        key = init_key(ad, use_rep)
        dims[name] = get_obsm(ad, key, hint=" Run `mmc.pp.prepare(adata)` or pass `use_rep=`.").shape[1]
        caps = _texts(ad.obs[ckey])
        labels = ad.obs[lkey].astype(str).to_numpy()
        if split_by is not None:
            groups = get_obs_column(ad, split_by).astype(str).to_numpy()
        else:
            groups = np.zeros(ad.n_obs, dtype=object)
        ok = caps != ""
        if not ok.any():
            raise ValueError(f"adata.obs[{ckey!r}] of {name!r} holds no non-empty captions.")
        if n_skip := int((~ok).sum()):
            logger.warning("%d cells of %r have no caption in obs[%r] and are left out.", n_skip, name, ckey)
        parts.append((name, ad, key, ad.obs_names.astype(str).to_numpy()[ok], caps[ok], labels[ok], groups[ok]))
    if len(set(dims.values())) > 1:
        raise ValueError(
            f"The initial embeddings differ in length across AnnData objects: {dims}; one model reads one length."
        )

    names_all = np.concatenate([np.array([f"{p[0]}:{c}" for c in p[3]], dtype=object) for p in parts])
    caps_all = np.concatenate([p[4] for p in parts])
    labels_all = np.concatenate([p[5] for p in parts])
    groups_all = np.concatenate([p[6] for p in parts])
    rng = np.random.default_rng(seed)
    assign = assign_splits(groups_all, (validation_size, test_size), rng, grouped=split_by is not None)
    split_names = {0: "train", 1: "validation", 2: "test"}

    samplers = {}
    for code, split in split_names.items():
        mask = assign == code
        if not mask.any():
            continue
        cl = pd.Series(labels_all[mask]).groupby(caps_all[mask]).unique()
        cap_labels = {str(c): sorted(map(str, v)) for c, v in cl.items()}
        sampler = NegativeSampler(
            cap_labels, n_negatives=n_negatives, hard=hard_negatives, pool=negative_pool, seed=seed
        )
        if bad := sampler.empty():
            raise ValueError(
                f"The {split} split has no valid negative for captions {bad[:3]!r}: every other caption there shares "
                f"their label. Use more cell types, another `label_key=`, or a different split."
            )
        samplers[split] = sampler

    # -- write the stores (once) -----------------------------------------------------------------
    from datasets import Dataset, DatasetDict, DatasetInfo

    stores = {}
    for name, ad, key, *_ in parts:
        X = get_obsm(ad, key)
        store = write_store(X, ad.obs_names.astype(str).tolist(), Path(store_dir) / name, name=name, overwrite=True)
        stores[name] = store.spec()

    out = {}
    for code, split in split_names.items():
        if split not in samplers:
            continue
        mask = assign == code
        cells, caps = names_all[mask].tolist(), caps_all[mask].tolist()
        sampler = samplers[split]
        negs = sampler.draw(caps, cells, epoch=0)
        if shape == "multiplets":
            data: dict[str, list] = {"cell": cells, "caption": caps}
            for j in range(n_negatives):
                data[f"negative_{j + 1}"] = [row[j] for row in negs]
        else:
            rows_cell, rows_cap, rows_label = [], [], []
            for cell, cap, neg in zip(cells, caps, negs, strict=True):
                rows_cell += [cell] * (1 + n_negatives)
                rows_cap += [cap, *neg]
                rows_label += [1.0] + [0.0] * n_negatives
            data = {"cell": rows_cell, "caption": rows_cap, "label": rows_label}
        meta = {
            "shape": shape,
            "stores": stores,
            "dim": int(next(iter(dims.values()))),
            "n_negatives": int(n_negatives),
            "hard_negatives": bool(hard_negatives),
            "negative_pool": sampler.pool,
            "seed": int(seed),
            "split_by": split_by,
            "caption_labels": {
                c: sorted(map(str, lab))
                for c, lab in pd.Series(labels_all[mask]).groupby(caps_all[mask]).unique().items()
            },
        }
        info = DatasetInfo(description=json.dumps({_keys.DATASET_META: meta}))
        out[split] = Dataset.from_dict(data, info=info)
    ds = DatasetDict(out)
    logger.info("built %s dataset: %s", shape, ", ".join(f"{k} {len(v)} rows" for k, v in ds.items()))
    return ds


def resample_negatives(dataset: Dataset, *, epoch: int) -> Dataset:
    """Draw the negatives of a multiplets ``dataset`` anew for ``epoch``.

    Parameters
    ----------
    dataset
        A multiplets split from :func:`build_dataset`.
    epoch
        Epoch whose negatives to draw (0 = as built); the draw is a function of the dataset's seed and ``epoch``.

    Returns
    -------
    A copy of ``dataset`` with new ``negative_*`` columns.

    Examples
    --------
    >>> ds = mmc.pp.build_dataset(adata, "stores", n_negatives=2)  # doctest: +SKIP
    >>> epoch_3 = mmc.pp.resample_negatives(ds["train"], epoch=3)  # doctest: +SKIP

    """
    sampler = sampler_for(dataset)
    if sampler is None:
        raise ValueError("Only multiplets datasets have negative columns to resample; this one holds pairs.")
    sampler.epoch = epoch
    return dataset.map(sampler.transform, batched=True, load_from_cache_file=False)
