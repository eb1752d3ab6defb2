"""No stray progress bars during training; saved weights follow the user's umask."""

from __future__ import annotations

import os
import stat

import pytest

import mmcontext as mmc


def test_training_shows_no_widget_bar_and_the_card_has_distinct_captions(tiny, capfd):
    mmc.pp.prepare(tiny)
    model = mmc.tl.train(tiny, epochs=1, batch_size=8, seed=0)
    assert "Computing widget examples" not in capfd.readouterr().err
    widget = model.model_card_data.widget[0]
    examples = [widget["source_sentence"], *widget["sentences"]]
    assert len(examples) == len(set(examples)) == 4  # distinct captions, not one repeated
    assert set(examples) <= set(tiny.obs["mmc_caption"].astype(str))


def test_no_nested_evaluation_bar():
    from transformers import TrainerState, TrainingArguments

    from mmcontext.training._trainer import BarOnlyProgress

    bar = BarOnlyProgress()
    state = TrainerState()
    state.is_world_process_zero = True
    bar.on_prediction_step(TrainingArguments("unused", report_to="none"), state, None, eval_dataloader=[1, 2, 3])
    assert bar.prediction_bar is None


@pytest.mark.parametrize("how", ["save_model", "save_pretrained"])
def test_saved_weights_follow_the_umask(tmp_path, how):
    model = mmc.models.MMContextEncoder.build(5)
    old = os.umask(0o022)
    try:
        if how == "save_model":
            path = mmc.models.save_model(model, tmp_path / "m")
        else:
            path = tmp_path / "m"
            model.save_pretrained(str(path))
    finally:
        os.umask(old)
    weights = sorted(path.rglob("*.safetensors"))
    assert weights
    assert {oct(stat.S_IMODE(w.stat().st_mode)) for w in weights} == {"0o644"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o755


def test_training_on_a_dataset_shows_no_widget_bar(tiny, tmp_path, capfd):
    mmc.pp.prepare(tiny)
    ds = mmc.pp.build_dataset(tiny, tmp_path / "stores", validation_size=0.2)
    capfd.readouterr()
    model = mmc.tl.train(dataset=ds, epochs=1, batch_size=8, hidden_dim=8)
    assert "Computing widget examples" not in capfd.readouterr().err
    widget = model.model_card_data.widget[0]
    examples = [widget["source_sentence"], *widget["sentences"]]
    assert len(examples) == len(set(examples)) >= 2
    assert set(examples) <= set(tiny.obs["mmc_caption"].astype(str))
