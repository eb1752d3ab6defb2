"""The training loop of a :class:`~mmcontext.models.CellTextReranker`: positives, sampled negatives, BCE."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..data._negatives import NegativeSampler
from ..models._layers import fit_standardiser
from ..models._threads import torch_threads
from ..ontology import caption_phrases

if TYPE_CHECKING:
    from ..models import CellTextReranker

logger = logging.getLogger("mmcontext")


def fit_reranker(
    model: CellTextReranker,
    X: np.ndarray,
    captions: Sequence[str],
    *,
    epochs: int = 8,
    n_negatives: int = 3,
    hard_negatives: float = 0.5,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    fragments: bool = True,
    max_seconds: float | None = None,
    num_threads: int | None = 1,
    seed: int = 0,
) -> CellTextReranker:
    """Train ``model`` on cells ``X`` and their ``captions``.

    Each cell's caption (or, half of the time with ``fragments``, one of its phrases) is a positive;
    ``n_negatives`` other captions or phrases its caption lacks are negatives. A fraction
    ``hard_negatives`` of the negative captions is drawn in proportion to how close their cells'
    centroid lies to the cell (similar cell types; ``NegativeSampler(strategy="centroid")``), the rest
    uniformly (``strategy="caption"``: the reranker reads captions, no labels). ``num_threads`` torch threads
    are used while training (restored afterwards; ``None`` leaves torch's setting). Returns ``model``.
    """
    X = model._check_cells(X)
    captions = np.asarray([str(c) for c in captions], dtype=object)
    if len(captions) != len(X):
        raise ValueError(f"{len(X)} cells but {len(captions)} captions.")
    if epochs < 1 or n_negatives < 1 or batch_size < 1 or not 0 <= hard_negatives <= 1:
        raise ValueError("epochs, n_negatives and batch_size must be >= 1 and hard_negatives in [0, 1].")
    start_time = time.perf_counter()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    _, scale = fit_standardiser(model, X)
    uniq, cap_of = np.unique(captions, return_inverse=True)
    if len(uniq) < 2:
        raise ValueError("Training a reranker needs at least 2 distinct captions.")
    n_caps = len(uniq)
    texts = list(uniq)
    own_phrases: list[list[int]] = [[] for _ in uniq]
    if fragments:
        for c, cap in enumerate(uniq):
            for p in caption_phrases(cap):
                if p not in texts:
                    texts.append(p)
                own_phrases[c].append(texts.index(p))
    phrase_ids = np.array(sorted({i for ids in own_phrases for i in ids}), dtype=np.int64)
    # negatives: phrases a caption lacks; other captions, uniformly or by how near their cells' centroid lies
    lower = [t.lower() for t in texts]
    neg_phrases = [
        np.array([j for j in phrase_ids if (j != c if j < n_caps else lower[j] not in uniq[c].lower())], np.int64)
        for c in range(n_caps)
    ]
    others = NegativeSampler(list(uniq), strategy="caption")
    near = NegativeSampler(list(uniq), strategy="centroid").weigh_cells((X - X.mean(axis=0)) / scale, cap_of)
    tok, tmask = model.text_tokens(texts)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate, weight_decay=1e-4)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(float(n_negatives)))
    xt = torch.from_numpy(X)
    n = len(X)
    total_steps = epochs * int(np.ceil(n * (1 + n_negatives) / batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=learning_rate, total_steps=total_steps, pct_start=0.1)
    model.train()
    stopped = False
    with torch_threads(num_threads):
        for epoch in range(epochs):
            cells, tids = np.repeat(np.arange(n), 1 + n_negatives), []
            for i in range(n):
                c = cap_of[i]
                pos = c
                if own_phrases[c] and rng.random() < 0.5:
                    pos = rng.choice(own_phrases[c])
                tids.append(pos)
                cand_phr = neg_phrases[c]
                for _ in range(n_negatives):
                    r = rng.random()
                    if len(cand_phr) and r < 0.3:
                        tids.append(int(rng.choice(cand_phr)))
                    elif r < 0.3 + 0.7 * hard_negatives:
                        tids.append(near.pick(c, rng, cell=i))
                    else:
                        tids.append(others.pick(c, rng))
            ys = np.tile(np.r_[1.0, np.zeros(n_negatives)], n).astype(np.float32)
            perm = rng.permutation(len(cells))
            cells_a, tids_a, ys_a = cells[perm], np.asarray(tids, dtype=np.int64)[perm], ys[perm]
            total = 0.0
            for s in range(0, len(cells_a), batch_size):
                ti = torch.from_numpy(tids_a[s : s + batch_size])
                m = tmask[ti]
                L = int(m.sum(1).max())
                logits = model(xt[cells_a[s : s + batch_size]], tok[ti, :L], m[:, :L])
                loss = loss_fn(logits, torch.from_numpy(ys_a[s : s + batch_size]))
                opt.zero_grad()
                loss.backward()
                opt.step()
                if sched.last_epoch < total_steps - 1:
                    sched.step()
                total += float(loss.detach()) * len(ti)
            model.history.append({"epoch": epoch + 1, "loss": total / len(cells_a)})
            if max_seconds is not None and time.perf_counter() - start_time > max_seconds:
                stopped = epoch + 1 < epochs
                break
    model.eval()
    model.train_seconds = time.perf_counter() - start_time
    if stopped:
        logger.warning("reranker training stopped after %d epochs (max_seconds=%s)", len(model.history), max_seconds)
    return model
