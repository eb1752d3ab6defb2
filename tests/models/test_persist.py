"""One persistence path: the omics tower, the classifier head and the reranker save and load through models/_persist."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmcontext.models import CellTextReranker, ClassifierHead, OmicsEncoder, _persist


def _trained_head() -> ClassifierHead:
    torch.manual_seed(0)
    head = ClassifierHead(4, classes=["a", "b", "c"], hidden_dim=8, features={"use_rep": "X_pca"})
    head.input_mean.copy_(torch.arange(4.0))
    head.history = [{"epoch": 1, "loss": 1.5}, {"epoch": 2, "loss": 0.5}]
    return head


def test_every_module_goes_through_write_and_read(tmp_path, monkeypatch):
    written, read = [], []
    write, read_ = _persist.write_module, _persist.read_module
    spy_write = lambda m, *a, **k: written.append(type(m).__name__) or write(m, *a, **k)  # noqa: E731
    spy_read = lambda c, *a, **k: read.append(c.__name__) or read_(c, *a, **k)  # noqa: E731
    monkeypatch.setattr(_persist, "write_module", spy_write)
    monkeypatch.setattr(_persist, "read_module", spy_read)
    import mmcontext.models._omics as omics

    monkeypatch.setattr(omics, "write_module", _persist.write_module)
    monkeypatch.setattr(omics, "read_module", _persist.read_module)
    enc = OmicsEncoder(3, 5, hidden_dim=4)
    (tmp_path / "omics").mkdir()
    enc.save(str(tmp_path / "omics"))
    OmicsEncoder.load(str(tmp_path / "omics"))
    _trained_head().save(tmp_path / "head")
    ClassifierHead.load(tmp_path / "head")
    rr = CellTextReranker(6, d_model=8, n_layers=1, n_heads=2)
    rr.history = [{"epoch": 1, "loss": 0.7}]
    rr.save(tmp_path / "rr")
    CellTextReranker.load(tmp_path / "rr")
    names = ["OmicsEncoder", "ClassifierHead", "CellTextReranker"]
    assert written == names and read == names


def test_head_round_trip_keeps_config_state_and_weights(tmp_path):
    head = _trained_head()
    head.save(tmp_path / "head")
    assert sorted(p.name for p in (tmp_path / "head").iterdir()) == ["classifier.safetensors", "classifier_config.json"]
    config = json.loads((tmp_path / "head" / "classifier_config.json").read_text())
    assert config["history"] == head.history and config["classes"] == ["a", "b", "c"]
    back = ClassifierHead.load(tmp_path / "head")
    assert back.history == head.history and back.features == head.features and not back.training
    X = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    np.testing.assert_array_equal(back.predict(X), head.predict(X))


def test_folders_written_by_the_former_hand_rolled_save_still_load(tmp_path):
    """Before models/_persist, save() wrote json.dumps(config, indent=1) and safetensors' save_file(state_dict)."""
    from safetensors.torch import save_file

    head = _trained_head()
    old = tmp_path / "old_head"
    old.mkdir()
    config = {
        "input_dim": 4,
        "task": "classification",
        "classes": ["a", "b", "c"],
        "hidden_dim": 8,
        "dropout": 0.1,
        "features": {"use_rep": "X_pca"},
        "history": head.history,
    }
    (old / "classifier_config.json").write_text(json.dumps(config, indent=1))
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(old / "classifier.safetensors"))
    back = ClassifierHead.load(old)
    X = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    np.testing.assert_array_equal(back.predict(X), head.predict(X))
    assert back.history == head.history

    rr = CellTextReranker(6, d_model=8, n_layers=1, n_heads=2, input_space={"obsm_key": "X_pca"})
    rr_old = tmp_path / "old_rr"
    rr_old.mkdir()
    rr_config = {k: getattr(rr, k) for k in CellTextReranker.config_keys}
    rr_config |= {"history": [{"loss": 1.0}], "train_seconds": 2.5}
    (rr_old / "reranker_config.json").write_text(json.dumps(rr_config, indent=1))
    save_file({k: v.contiguous() for k, v in rr.state_dict().items()}, str(rr_old / "reranker.safetensors"))
    rr_back = CellTextReranker.load(rr_old)
    assert rr_back.train_seconds == 2.5 and rr_back.history == [{"loss": 1.0}]
    for name, value in rr.state_dict().items():
        torch.testing.assert_close(rr_back.state_dict()[name], value, rtol=0, atol=0)


def test_head_and_reranker_share_a_folder(tmp_path):
    head = _trained_head()
    head.save(tmp_path / "both")
    rr = CellTextReranker(6, d_model=8, n_layers=1, n_heads=2)
    rr.save(tmp_path / "both")
    assert len(list((tmp_path / "both").iterdir())) == 4
    assert ClassifierHead.load(tmp_path / "both").history == head.history
    CellTextReranker.load(tmp_path / "both")


def test_wrong_or_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no classifier_config\.json; it is not a saved ClassifierHead"):
        ClassifierHead.load(tmp_path)
    _trained_head().save(tmp_path / "head")
    (tmp_path / "head" / "classifier.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no classifier\.safetensors"):
        ClassifierHead.load(tmp_path / "head")
    config = json.loads((tmp_path / "head" / "classifier_config.json").read_text())
    ClassifierHead(4, classes=["a", "b"], hidden_dim=8).save(tmp_path / "other")  # 2 classes: other shapes
    (tmp_path / "other" / "classifier_config.json").write_text(json.dumps(config))
    with pytest.raises(RuntimeError, match=r"size mismatch"):
        ClassifierHead.load(tmp_path / "other")
