"""Negatives: the one sampler of negative captions, its strategies named in :data:`STRATEGIES`.

A *negative* for an anchor caption is a caption of another label: it differs from the anchor, and no cell that
carries it has the label (cell type) of a cell that carries the anchor. Every path draws negatives here:
:func:`mmcontext.pp.build_dataset` (the ``negative_*`` columns, the 0-labelled rows of pairs, re-drawn each epoch),
the triplet / contrastive columns of ``tl.train`` on an AnnData (:func:`draw_negatives`) and the reranker's fit loop
(:meth:`NegativeSampler.pick`). Without labels each caption is its own label, so a negative is any other caption.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np

#: How a negative is chosen among the captions of other labels.
#:
#: - ``"label"``: uniformly (the default);
#: - ``"similar"``: uniformly among the ``pool`` most similar to the anchor (TF-IDF cosine over words and word
#:   pairs; ``build_dataset(hard_negatives=True)``);
#: - ``"caption"``: uniformly among all other captions, labels ignored (each caption is its own label);
#: - ``"centroid"``: per cell, in proportion to how close the centroid of the caption's cells lies to the cell
#:   (:meth:`NegativeSampler.weigh_cells`; the reranker's hard negatives).
STRATEGIES = ("label", "similar", "caption", "centroid")


class NegativeSampler:
    """Draws negative captions that are truly different from the anchor's, reproducibly.

    A caption is a valid negative for an anchor caption ``c`` when it differs from ``c`` and no cell
    carrying it has a label (cell type) of any cell carrying ``c`` (for ``strategy="caption"``: any other
    caption). :meth:`draw` gives ``n_negatives`` per row; its draws depend only on ``(seed, epoch, row key)``,
    so they are reproducible, independent of batch order, and differ between seeds and epochs.
    :meth:`sample` draws one per row from a random stream, :meth:`pick` one inside a training loop.

    Parameters
    ----------
    caption_labels
        Each distinct caption and the labels of the cells that carry it; a plain sequence of captions makes each
        caption its own label.
    n_negatives
        Negatives per anchor (:meth:`draw`).
    strategy
        One of :data:`STRATEGIES`; default ``"similar"`` with ``hard=True``, else ``"label"``.
    hard
        Prefer the most similar valid captions (``strategy="similar"``).
    pool
        Size of the similar-caption pool (default ``3 * n_negatives``).
    seed
        Base seed of :meth:`draw`.

    """

    def __init__(
        self,
        caption_labels: Mapping[str, Sequence[str]] | Sequence[str],
        *,
        n_negatives: int = 1,
        strategy: str | None = None,
        hard: bool = False,
        pool: int | None = None,
        seed: int = 0,
    ) -> None:
        strategy = strategy or ("similar" if hard else "label")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}.")
        if not isinstance(caption_labels, Mapping) or strategy == "caption":
            caption_labels = {str(c): [str(c)] for c in caption_labels}
        self.strategy = strategy
        self.captions = sorted(caption_labels)
        self.n_negatives = int(n_negatives)
        self.hard = strategy == "similar"
        self.pool = int(pool) if pool is not None else 3 * self.n_negatives
        self.seed = int(seed)
        self.epoch = 0
        #: Epochs for which :meth:`transform` has drawn negatives (for checks).
        self.epochs_drawn: set[int] = set()
        #: Per-cell draw weights over the captions (``strategy="centroid"``, set by :meth:`weigh_cells`).
        self.cell_weights: np.ndarray | None = None
        self._pos = {c: i for i, c in enumerate(self.captions)}
        labels = [frozenset(map(str, caption_labels[c])) for c in self.captions]
        n = len(self.captions)
        #: ``valid[i, j]``: caption ``j`` is a negative for anchor caption ``i``.
        self.valid = np.array(
            [[i != j and not (labels[i] & labels[j]) for j in range(n)] for i in range(n)], dtype=bool
        ).reshape(n, n)
        order = np.tile(np.arange(n), (n, 1))
        if self.hard and n > 1:
            order = np.argsort(-_caption_similarity(self.captions), axis=1, kind="stable")
        self.candidates: list[np.ndarray] = []
        for i in range(n):
            cand = order[i][self.valid[i][order[i]]]
            self.candidates.append(cand[: self.pool] if self.hard else cand)

    def empty(self) -> list[str]:
        """Captions for which no valid negative exists."""
        return [c for c, cand in zip(self.captions, self.candidates, strict=True) if len(cand) == 0]

    def index(self, captions: Sequence[str]) -> np.ndarray:
        """Positions of ``captions`` in :attr:`captions`."""
        try:
            return np.array([self._pos[str(c)] for c in captions], dtype=np.int64)
        except KeyError as err:
            raise ValueError(f"Caption {err.args[0]!r} is not one of the sampler's captions.") from None

    def _candidates(self, i: int) -> np.ndarray:
        cand = self.candidates[i]
        if len(cand) == 0:
            raise ValueError(
                f"No valid negative caption for {self.captions[i]!r}: every other caption shares its label."
            )
        return cand

    def _per_row(self, how: str) -> None:
        if self.strategy == "centroid":
            raise ValueError(f"strategy='centroid' draws per cell with pick(..., cell=i), not with {how}.")

    def draw(self, captions: Sequence[str], keys: Sequence[str], *, epoch: int | None = None) -> list[list[str]]:
        """``n_negatives`` negative captions for each anchor caption; ``keys`` identify the rows (cell refs)."""
        self._per_row("draw")
        epoch = self.epoch if epoch is None else int(epoch)
        out = []
        for cap, key in zip(captions, keys, strict=True):
            cand = self._candidates(self._pos[cap])
            rng = np.random.default_rng([self.seed, epoch, zlib.crc32(str(key).encode("utf-8"))])
            pick = rng.choice(len(cand), size=self.n_negatives, replace=len(cand) < self.n_negatives)
            out.append([self.captions[cand[k]] for k in pick])
        return out

    def sample(self, captions: Sequence[str], rng: np.random.Generator) -> list[str]:
        """One negative caption per anchor caption, all drawn from the stream ``rng`` in one call.

        Each anchor's valid captions are counted cyclically from the anchor on, and a uniform offset picks one:
        for ``strategy="caption"`` that is ``captions[(anchor + k) % n]`` with ``k`` uniform in ``1 .. n - 1``.
        """
        self._per_row("sample")
        idx = self.index(captions)
        rotated = []
        for i in range(len(self.captions)):
            cand = self.candidates[i]
            rotated.append(np.roll(cand, -int(np.searchsorted(cand, i))) if not self.hard else cand)
        sizes = np.array([len(rotated[i]) for i in idx], dtype=np.int64)
        if len(sizes) and sizes.min() == 0:
            self._candidates(int(idx[np.argmin(sizes)]))  # raises, naming the caption
        offsets = rng.integers(0, sizes) if len(sizes) else sizes
        return [self.captions[rotated[i][o]] for i, o in zip(idx, offsets, strict=True)]

    def weigh_cells(self, Z: np.ndarray, cell_captions: np.ndarray, *, max_pairs: float = 5e6) -> NegativeSampler:
        """Per-cell weights over the captions for ``strategy="centroid"``; returns the sampler.

        ``Z`` holds the cells' (standardised) features and ``cell_captions`` each cell's caption position
        (:meth:`index`). A valid caption's weight falls with the mean squared distance of the cell to the centroid of
        the caption's cells, ``exp(-(d2 - min d2) / (0.1 * median d2))``; past ``max_pairs`` cell-caption pairs every
        valid caption weighs the same.
        """
        n_caps = len(self.captions)
        cell_captions = np.asarray(cell_captions, dtype=np.int64)
        cent = np.stack([Z[cell_captions == c].mean(axis=0) for c in range(n_caps)])
        if n_caps * len(Z) < max_pairs:
            d2 = ((Z[:, None, :] - cent[None]) ** 2).mean(-1)
        else:
            d2 = np.zeros((len(Z), n_caps))
        d2[~self.valid[cell_captions]] = np.inf
        scale = max(float(np.median(d2[np.isfinite(d2)])) * 0.1, 1e-6)
        near = np.exp(-(d2 - d2.min(1, keepdims=True)) / scale)
        self.cell_weights = near / near.sum(1, keepdims=True)
        return self

    def pick(self, anchor: int, rng: np.random.Generator, *, cell: int | None = None) -> int:
        """The position of one negative for the anchor caption at position ``anchor``, drawn from ``rng``.

        ``strategy="centroid"`` draws by the weights of ``cell`` (:meth:`weigh_cells`); the others uniformly.
        """
        if self.strategy == "centroid":
            if self.cell_weights is None or cell is None:
                raise ValueError("strategy='centroid' needs weigh_cells(Z, cell_captions) and pick(..., cell=i).")
            return int(rng.choice(len(self.captions), p=self.cell_weights[cell]))
        return int(rng.choice(self._candidates(anchor)))

    def transform(self, batch: dict[str, list]) -> dict[str, list]:
        """A ``datasets`` transform that replaces the ``negative_*`` columns with this epoch's draw."""
        self.epochs_drawn.add(self.epoch)
        negs = self.draw(batch["caption"], batch["cell"])
        batch = dict(batch)
        for j in range(self.n_negatives):
            batch[f"negative_{j + 1}"] = [row[j] for row in negs]
        return batch


def draw_negatives(
    captions: Sequence[str], *, labels: Sequence[str] | None = None, seed: int = 0, strategy: str | None = None
) -> list[str]:
    """One negative caption per row: a caption of another label (any other caption without ``labels``).

    The draw of ``tl.train``'s triplet and contrastive columns on an AnnData, from one stream seeded with ``seed``
    (:meth:`NegativeSampler.sample`). Without ``labels`` it is the former "any other caption" draw, value for
    value. Raises ``ValueError`` when a row's caption has no valid negative.
    """
    captions = [str(c) for c in captions]
    if labels is None:
        sampler = NegativeSampler(sorted(set(captions)), strategy=strategy or "caption")
    else:
        if len(labels) != len(captions):
            raise ValueError(f"{len(captions)} captions but {len(labels)} labels.")
        groups: dict[str, set[str]] = {}
        for cap, lab in zip(captions, labels, strict=True):
            groups.setdefault(cap, set()).add(str(lab))
        sampler = NegativeSampler({c: sorted(v) for c, v in groups.items()}, strategy=strategy)
    return sampler.sample(captions, np.random.default_rng(seed))


def _caption_similarity(captions: list[str]) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(captions)
    sim = (tfidf @ tfidf.T).toarray()
    return sim
