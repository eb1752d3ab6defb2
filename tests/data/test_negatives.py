"""The one negative sampler: its strategies by name, and every path drawing through it."""

from __future__ import annotations

import numpy as np
import pytest

from mmcontext.data._negatives import STRATEGIES, NegativeSampler, draw_negatives
from mmcontext.models._losses import loss_columns

CAPS = ["CD14+ monocyte", "classical monocyte", "B cell", "naive B cell", "NK cell", "T cell"] * 30
LABELS = ["monocyte", "monocyte", "B cell", "B cell", "NK cell", "T cell"] * 30


def test_without_labels_a_negative_is_any_other_caption_as_loss_columns_drew_it():
    for seed in (0, 1, 7):
        negs = draw_negatives(CAPS, seed=seed)
        assert negs == loss_columns("triplet", list(range(len(CAPS))), CAPS, seed=seed)["negative"]
        assert all(n != c for n, c in zip(negs, CAPS, strict=True))
    assert set(draw_negatives(CAPS, seed=0)) == set(CAPS)
    assert draw_negatives(CAPS, labels=CAPS, seed=5) == draw_negatives(CAPS, seed=5)  # captions as their own labels


def test_with_labels_a_negative_is_a_caption_of_another_label():
    label_of = dict(zip(CAPS, LABELS, strict=True))
    negs = draw_negatives(CAPS, labels=LABELS, seed=3)
    assert all(label_of[n] != label_of[c] for n, c in zip(negs, CAPS, strict=True))
    assert set(negs) == set(CAPS)  # all captions get drawn for some anchor
    assert negs == draw_negatives(CAPS, labels=LABELS, seed=3) != draw_negatives(CAPS, labels=LABELS, seed=4)
    with pytest.raises(ValueError, match="every other caption shares its label"):
        draw_negatives(["a", "b"], labels=["x", "x"])
    with pytest.raises(ValueError, match="2 captions but 1 labels"):
        draw_negatives(["a", "b"], labels=["x"])


def test_strategies_by_name():
    groups = {c: [lab] for c, lab in zip(CAPS[:6], LABELS[:6], strict=True)}
    assert STRATEGIES == ("label", "similar", "caption", "centroid")
    label = NegativeSampler(groups, n_negatives=2, seed=1)
    assert label.strategy == "label" and NegativeSampler(groups, hard=True).strategy == "similar"
    for cap, negs in zip(CAPS[:6], label.draw(CAPS[:6], [f"k{i}" for i in range(6)]), strict=True):
        assert all(groups[n] != groups[cap] for n in negs)
    anyother = NegativeSampler(groups, strategy="caption")  # labels ignored
    assert set(anyother.captions[j] for j in anyother.candidates[anyother.index(["B cell"])[0]]) == set(CAPS[:6]) - {
        "B cell"
    }
    similar = NegativeSampler(groups, strategy="similar", pool=1)
    b = similar.index(["B cell"])[0]  # TF-IDF drops one-letter words: "B cell" is nearest to "T cell"
    assert [similar.captions[j] for j in similar.candidates[b]] == ["T cell"]
    with pytest.raises(ValueError, match="strategy must be one of"):
        NegativeSampler(groups, strategy="nearest")
    with pytest.raises(ValueError, match="not one of the sampler's captions"):
        label.index(["macrophage"])


def test_centroid_weights_follow_distance_and_skip_invalid_captions():
    caps = ["a", "b", "c"]
    sampler = NegativeSampler({"a": ["x"], "b": ["x"], "c": ["y"]}, strategy="centroid")
    with pytest.raises(ValueError, match="weigh_cells"):
        sampler.pick(0, np.random.default_rng(0), cell=0)
    with pytest.raises(ValueError, match="draws per cell"):
        sampler.draw(caps, caps)
    Z = np.array([[0.0], [0.1], [1.0], [5.0]])
    sampler.weigh_cells(Z, sampler.index(["a", "a", "b", "c"]))
    w = sampler.cell_weights
    np.testing.assert_allclose(w.sum(1), 1.0)
    assert w[0, 0] == 0 and w[0, 1] == 0 and w[0, 2] == 1  # "b" shares a's label: only "c" is a negative
    free = NegativeSampler(caps, strategy="centroid").weigh_cells(Z, np.array([0, 0, 1, 2]))
    assert free.cell_weights[0, 0] == 0 and free.cell_weights[0, 1] > free.cell_weights[0, 2]  # b is nearer
    rng = np.random.default_rng(0)
    assert {free.pick(0, rng, cell=0) for _ in range(200)} <= {1, 2}
