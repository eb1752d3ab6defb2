"""Label probabilities calibrated on validation cells: fitted by tl.train, saved with the model, used by tl.annotate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mmcontext as mmc
from mmcontext.datasets import PBMC_LABEL_KEY
from mmcontext.tl._calibration import fit_calibration, label_prior, label_probabilities
from mmcontext.tl._texts import label_texts


@pytest.fixture(scope="module")
def shuffled_model(pbmc_split):
    """Trained on the PBMC training cells with their captions permuted: nothing to learn about the cells."""
    train = pbmc_split[0].copy()
    rng = np.random.default_rng(0)
    train.obs["mmc_caption"] = train.obs["mmc_caption"].to_numpy()[rng.permutation(train.n_obs)]
    return mmc.tl.train(train, epochs=10, seed=0)


def test_train_fits_and_records_a_calibration(pbmc_split, trained_model):
    cal = trained_model.calibration
    assert set(cal) >= {"scale", "weight", "prior", "n_cells", "nll", "nll_prior_only"}
    assert cal["n_cells"] == 56  # 10% of the 560 training cells
    counts = pbmc_split[0].obs["mmc_caption"].value_counts()
    assert set(cal["prior"]) == set(counts.index)
    assert sum(cal["prior"].values()) == 560 - 56
    # the real model explains its validation cells far better than caption frequencies do
    assert cal["weight"] > 0.8 and cal["nll"] < 0.6 * cal["nll_prior_only"], cal


def test_shuffled_captions_fall_back_to_the_majority_label(pbmc_split, shuffled_model):
    cal = shuffled_model.calibration
    assert cal["weight"] < 0.3, cal
    test = pbmc_split[1].copy()
    labels = list(test.obs[PBMC_LABEL_KEY].cat.categories)
    mmc.tl.annotate(test, shuffled_model, labels)
    train_majority = pbmc_split[0].obs[PBMC_LABEL_KEY].value_counts().index[0]
    pred = test.obs["mmc_label"].astype(str)
    assert (pred == train_majority).mean() >= 0.9
    truth = test.obs[PBMC_LABEL_KEY].astype(str)
    majority_rate = truth.value_counts(normalize=True).iloc[0]
    assert abs((pred == truth).mean() - majority_rate) <= 0.05
    # without calibration the same model's labels are scattered noise
    raw = mmc.tl.annotate(pbmc_split[1], shuffled_model, labels, calibrate=False, copy=True)
    assert (raw.obs["mmc_label"].astype(str) == train_majority).mean() < 0.7
    assert "mmc_label_probability" not in raw.obs


def test_annotate_writes_probabilities_that_sum_with_the_others(pbmc_split, trained_model):
    test = pbmc_split[1].copy()
    mmc.tl.annotate(test, trained_model, PBMC_LABEL_KEY)
    p = test.obs["mmc_label_probability"]
    assert p.dtype == np.float32 and ((p > 0) & (p <= 1)).all()
    scores = mmc.tl.label_scores(test)  # the labels as given (the obsm columns are h5ad-safe)
    P = label_probabilities(scores.to_numpy(), label_texts(list(scores.columns)), trained_model.calibration)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(p, P.max(axis=1), atol=1e-6)
    # calibrated and plain picks agree wherever the scores are clear (here: everywhere)
    plain = mmc.tl.annotate(test, trained_model, PBMC_LABEL_KEY, calibrate=False, copy=True)
    assert (plain.obs["mmc_label"] == test.obs["mmc_label"]).mean() >= 0.97
    entry = test.uns["mmcontext"]["annotate"]["calibration"]
    assert entry["weight"] == pytest.approx(trained_model.calibration["weight"])


def test_calibration_is_saved_with_the_model(trained_model, tmp_path):
    trained_model.save_pretrained(str(tmp_path / "m"))
    back = mmc.models.load(tmp_path / "m")
    cal = dict(trained_model.calibration)
    assert back.calibration.pop("prior") == cal.pop("prior")
    assert back.calibration == pytest.approx(cal)


def test_no_validation_cells_no_calibration(pbmc_split):
    train, test = pbmc_split[0].copy(), pbmc_split[1][:30].copy()
    model = mmc.tl.train(train, epochs=1, validation_split=0)
    assert model.calibration == {}
    assert train.uns["mmcontext"]["train"]["calibration"] in (None, "None")
    mmc.tl.annotate(test, model, PBMC_LABEL_KEY)
    assert "mmc_label_probability" not in test.obs
    S = test.obsm["mmc_label_scores"].to_numpy()
    assert (test.obs["mmc_label"].cat.codes.to_numpy() == S.argmax(axis=1)).all()


def test_label_prior_unseen_labels_and_subtypes():
    cal = {"prior": {"a": 30, "b": 10}, "scale": 10.0, "weight": 0.5}
    np.testing.assert_allclose(label_prior([["a"], ["b"]], cal), [0.75, 0.25])
    # an unseen label gets the mean of the seen ones; a label covering two captions their sum
    np.testing.assert_allclose(label_prior([["a"], ["b"], ["new"]], cal), np.array([30, 10, 20]) / 60)
    np.testing.assert_allclose(label_prior([["a", "b"], ["new"]], cal), [0.5, 0.5])
    np.testing.assert_allclose(label_prior([["x"], ["y"]], cal), [0.5, 0.5])
    assert label_probabilities(np.zeros((2, 2)), [["a"], ["b"]], {}) is None
    # no information in the scores: the prior decides; clear scores: the scores decide
    P = label_probabilities(np.array([[0.5, 0.5], [0.1, 0.9]]), [["a"], ["b"]], cal)
    assert P[0].argmax() == 0 and P[1].argmax() == 1


class _Fixed:
    """Stands in for a model in fit_calibration: cells are given as vectors, texts map to fixed vectors."""

    def __init__(self, text_vectors: dict[str, np.ndarray]) -> None:
        self.text_vectors = text_vectors

    def encode(self, inputs, *, task, **_):
        rows = [np.asarray(x, float) if task == "omics" else self.text_vectors[x] for x in inputs]
        X = np.stack(rows)
        return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_fit_weight_follows_how_much_the_cells_tell():
    rng = np.random.default_rng(0)
    captions = ["A", "B", "C"]
    vec = {c: v for c, v in zip(captions, np.eye(3) * 5, strict=True)}
    model = _Fixed(vec)
    truth = rng.choice(captions, size=300, p=[0.6, 0.3, 0.1])
    train_caps = rng.choice(captions, size=600, p=[0.6, 0.3, 0.1])
    informative = [vec[c] + rng.normal(size=3) for c in truth]
    noise = [rng.normal(size=3) for _ in truth]
    good = fit_calibration(model, informative, truth, train_caps)
    bad = fit_calibration(model, noise, truth, train_caps)
    assert good["weight"] > 0.8 and bad["weight"] < 0.2, (good, bad)
    assert good["nll"] < good["nll_prior_only"] and bad["nll"] <= bad["nll_prior_only"] + 1e-6
    assert pd.Series(good["prior"]).idxmax() == "A" and fit_calibration(model, [], [], train_caps) == {}


def test_fit_reads_a_fixed_subset_of_many_cells(monkeypatch):
    import mmcontext.tl._calibration as calib

    monkeypatch.setattr(calib, "MAX_CALIBRATION_CELLS", 50)
    monkeypatch.setattr(calib, "MAX_PRIOR_CAPTIONS", 2)
    rng = np.random.default_rng(1)
    vec = {c: v for c, v in zip("ABC", np.eye(3) * 5, strict=True)}
    truth = rng.choice(list("ABC"), size=400)
    cells = [vec[c] + rng.normal(size=3) for c in truth]
    train_caps = ["A"] * 50 + ["B"] * 30 + ["C"] * 5
    a = fit_calibration(_Fixed(vec), cells, truth, train_caps)
    b = fit_calibration(_Fixed(vec), cells, truth, train_caps)
    assert a["n_cells"] == 50 and a == b  # deterministic subset
    assert a["prior"] == {"A": 50, "B": 30}  # the most frequent captions only; "C" counts as unseen
    assert a["n_captions"] == 3 and a["weight"] > 0.8
