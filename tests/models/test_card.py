"""A saved model's card describes itself: data, captions, label columns, input space, encoding, metrics, install."""

from __future__ import annotations

import re

import mmcontext as mmc


def test_model_card_is_self_describing(trained_model, tmp_path):
    path = mmc.models.save_model(trained_model, tmp_path / "m")
    card = (path / "README.md").read_text()
    assert "Training Dataset:** Unknown" not in card
    assert "- **Training Dataset:** 560 cells x 765 genes; 504 for training, 56 held out" in card
    assert "- **Label columns**: obs['bulk_labels']" in card
    assert "**Input space**: genes (765 features, obsm key 'X_mmc_init'" in card
    assert "**How cells are encoded**: each cell's initial embedding (765 values" in card and "task='omics'" in card
    assert "`pip install mmcontext`" in card
    metrics = re.search(r"- \*\*Metrics\*\*: (.*)", card).group(1)
    for name in ("train_loss=", "eval_loss=", "calibration_weight=", "calibration_scale="):
        assert name in metrics, metrics
    examples = re.findall(r'  - e\.g\. "(.*)"', card)
    assert len(examples) == 3 and len(set(examples)) == 3
    widget = trained_model.model_card_data.widget[0]
    shown = [widget["source_sentence"], *widget["sentences"]]
    assert len(shown) == len(set(shown)) == 4
