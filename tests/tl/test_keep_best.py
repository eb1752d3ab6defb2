from __future__ import annotations

import numpy as np
import pytest
import torch

import mmcontext as mmc
from mmcontext.models import CellCaptionEvaluator
from mmcontext.training._keep_best import KeepBestCallback


def test_evaluator_ranks_each_cell_against_distinct_captions(trained_model, pbmc_split):
    _, test = pbmc_split
    X = test.obsm["X_mmc_init"]
    ev = CellCaptionEvaluator(list(X), list(test.obs["mmc_caption"]), name="held")
    metrics = ev(trained_model)
    assert set(metrics) == {"held_accuracy", "held_mrr", "held_recall@3"}
    assert ev.primary_metric == "held_accuracy"
    assert metrics["held_accuracy"] >= 0.8  # captions here are per label: this is zero-shot accuracy
    assert metrics["held_accuracy"] <= metrics["held_mrr"] <= metrics["held_recall@3"] <= 1
    with pytest.raises(ValueError, match="as many captions"):
        CellCaptionEvaluator([X[0]], ["a", "b"])


def test_keep_best_restores_the_best_snapshot():
    class State:
        epoch = 0

    model = mmc.models.MMContextEncoder.build(4, hidden_dim=8)
    keeper = KeepBestCallback(model, "eval_acc")
    weight = model.omics_encoder.net[0].weight
    original = weight.detach().clone()
    for epoch, (value, shift) in enumerate([(0.5, 1.0), (0.9, 2.0), (0.7, 3.0)], start=1):
        with torch.no_grad():
            weight.copy_(original + shift)
        State.epoch = epoch
        keeper.on_evaluate(None, State, None, metrics={"eval_acc": value})
    assert keeper.best == 0.9 and keeper.best_epoch == 2
    assert keeper.restore()
    torch.testing.assert_close(weight, original + 2.0)


def test_train_keep_best_records_the_best_epoch(tiny):
    mmc.pp.prepare(tiny, ontology=False)
    model = mmc.tl.train(tiny, epochs=3, batch_size=8, hidden_dim=32, validation_split=0.25, keep_best=True)
    evals = [(e["epoch"], e["eval_validation_accuracy"]) for e in model.mmc_history if "eval_validation_accuracy" in e]
    assert len(evals) == 3
    best_epoch = evals[int(np.argmax([v for _, v in evals]))][0]
    assert tiny.uns["mmcontext"]["train"]["best_epoch"] == best_epoch
    with pytest.raises(ValueError, match="validation"):
        mmc.tl.train(tiny, epochs=1, batch_size=8, validation_split=0, keep_best=True)
    with pytest.raises(ValueError, match="resume"):
        mmc.tl.train(tiny, epochs=1, keep_best=True, resume=True, output_dir="unused")
