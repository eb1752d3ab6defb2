"""Train / validation / test assignment of cells, optionally keeping whole groups (donors) together."""

from __future__ import annotations

import numpy as np


def assign_splits(
    groups: np.ndarray, sizes: tuple[float, float], rng: np.random.Generator, grouped: bool
) -> np.ndarray:
    """0 = train, 1 = validation, 2 = test for every cell; whole groups when ``grouped``."""
    val_size, test_size = sizes
    n = len(groups)
    out = np.zeros(n, dtype=np.int8)
    if not grouped:
        perm = rng.permutation(n)
        n_test = round(test_size * n)
        n_val = round(val_size * n)
        out[perm[:n_test]] = 2
        out[perm[n_test : n_test + n_val]] = 1
        return out
    uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if len(uniq) < 1 + (val_size > 0) + (test_size > 0):
        raise ValueError(
            f"split_by has {len(uniq)} distinct values; at least {1 + (val_size > 0) + (test_size > 0)} are needed "
            "for train/validation/test splits without sharing a group."
        )
    perm = rng.permutation(len(uniq))
    assign = np.zeros(len(uniq), dtype=np.int8)
    filled = {2: 0, 1: 0}
    targets = {2: test_size * n, 1: val_size * n}
    for g in perm:
        for split in (2, 1):
            room = targets[split] * 1.5 - filled[split]
            if filled[split] < targets[split] and (counts[g] <= room or (filled[split] == 0 and counts[g] <= n / 2)):
                assign[g] = split
                filled[split] += counts[g]
                break
    for split in (2, 1):  # a requested split that got no group takes the smallest train group
        train_groups = np.flatnonzero(assign == 0)
        if targets[split] > 0 and filled[split] == 0 and len(train_groups) > 1:
            g = train_groups[np.argmin(counts[train_groups])]
            assign[g] = split
            filled[split] += counts[g]
    if not (assign == 0).any():
        raise ValueError(
            f"No {'group'} is left for the train split ({len(uniq)} groups); lower validation_size/test_size."
        )
    return assign[inverse]
