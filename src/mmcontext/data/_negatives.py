"""Negative captions: for an anchor caption, captions of other cell types, drawn reproducibly."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np


class NegativeSampler:
    """Draws negative captions that are truly different from the anchor's.

    A caption is a valid negative for an anchor caption ``c`` when it differs from ``c`` and no cell
    carrying it has a label (cell type) of any cell carrying ``c``. With ``hard=True`` the draw is
    limited to the ``pool`` valid captions most similar to ``c`` (TF-IDF cosine over words and
    word pairs); otherwise it is uniform over all valid captions. Draws depend only on
    ``(seed, epoch, row key)``, so they are reproducible, independent of batch order, and differ
    between seeds and epochs.

    Parameters
    ----------
    caption_labels
        Each distinct caption and the labels of the cells that carry it.
    n_negatives
        Negatives per anchor.
    hard
        Prefer the most similar valid captions.
    pool
        Size of the hard-negative pool (default ``3 * n_negatives``).
    seed
        Base seed.

    """

    def __init__(
        self,
        caption_labels: Mapping[str, Sequence[str]],
        *,
        n_negatives: int = 1,
        hard: bool = False,
        pool: int | None = None,
        seed: int = 0,
    ) -> None:
        self.captions = sorted(caption_labels)
        self.n_negatives = int(n_negatives)
        self.hard = bool(hard)
        self.pool = int(pool) if pool is not None else 3 * self.n_negatives
        self.seed = int(seed)
        self.epoch = 0
        #: Epochs for which :meth:`transform` has drawn negatives (for checks).
        self.epochs_drawn: set[int] = set()
        self._pos = {c: i for i, c in enumerate(self.captions)}
        labels = [frozenset(map(str, caption_labels[c])) for c in self.captions]
        n = len(self.captions)
        valid = np.array([[i != j and not (labels[i] & labels[j]) for j in range(n)] for i in range(n)], dtype=bool)
        order = np.tile(np.arange(n), (n, 1))
        if self.hard and n > 1:
            sim = _caption_similarity(self.captions)
            order = np.argsort(-sim, axis=1, kind="stable")
        self.candidates: list[np.ndarray] = []
        for i in range(n):
            cand = order[i][valid[i][order[i]]]
            self.candidates.append(cand[: self.pool] if self.hard else cand)

    def empty(self) -> list[str]:
        """Captions for which no valid negative exists."""
        return [c for c, cand in zip(self.captions, self.candidates, strict=True) if len(cand) == 0]

    def draw(self, captions: Sequence[str], keys: Sequence[str], *, epoch: int | None = None) -> list[list[str]]:
        """``n_negatives`` negative captions for each anchor caption; ``keys`` identify the rows (cell refs)."""
        epoch = self.epoch if epoch is None else int(epoch)
        out = []
        for cap, key in zip(captions, keys, strict=True):
            cand = self.candidates[self._pos[cap]]
            if len(cand) == 0:
                raise ValueError(f"No valid negative caption for {cap!r}: every other caption shares its label.")
            rng = np.random.default_rng([self.seed, epoch, zlib.crc32(str(key).encode("utf-8"))])
            pick = rng.choice(len(cand), size=self.n_negatives, replace=len(cand) < self.n_negatives)
            out.append([self.captions[cand[k]] for k in pick])
        return out

    def transform(self, batch: dict[str, list]) -> dict[str, list]:
        """A ``datasets`` transform that replaces the ``negative_*`` columns with this epoch's draw."""
        self.epochs_drawn.add(self.epoch)
        negs = self.draw(batch["caption"], batch["cell"])
        batch = dict(batch)
        for j in range(self.n_negatives):
            batch[f"negative_{j + 1}"] = [row[j] for row in negs]
        return batch


def _caption_similarity(captions: list[str]) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(captions)
    sim = (tfidf @ tfidf.T).toarray()
    return sim
