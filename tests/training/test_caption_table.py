"""Frozen-text training through the caption table equals the reference path (captions tokenized every batch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mmcontext as mmc
from mmcontext.tl import _train
from mmcontext.training._caption_table import CaptionTable, IndexCollator, caption_codes


@pytest.fixture(scope="module")
def small():
    adata = mmc.datasets.pbmc68k_reduced()[:240].copy()
    mmc.pp.prepare(adata, caption_keys={"cell_type": "bulk_labels"})
    return adata


def _train_with(adata, monkeypatch, *, table: bool, **kwargs):
    if not table:
        monkeypatch.setattr(_train, "use_caption_table", lambda *args: False)
    kwargs = {"epochs": 2, "batch_size": 32, "hidden_dim": 64, "seed": 0, **kwargs}
    model = mmc.tl.train(adata, **kwargs)
    monkeypatch.undo()
    return model


def _weights(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.omics_encoder.parameters()])


@pytest.mark.parametrize("loss", ["mnrl", "triplet", "contrastive"])
def test_table_path_trains_the_same_model_as_the_reference_path(small, monkeypatch, loss):
    calls = []
    real = _train.use_caption_table
    monkeypatch.setattr(_train, "use_caption_table", lambda *a: calls.append(real(*a)) or calls[-1])
    fast = mmc.tl.train(small.copy(), epochs=2, batch_size=32, hidden_dim=64, seed=0, loss=loss)
    monkeypatch.undo()
    assert calls == [True]  # frozen text from an AnnData takes the table path
    ref = _train_with(small.copy(), monkeypatch, table=False, loss=loss)
    # the same batches, the same caption outputs (up to float rounding of the batched caption encoding)
    losses = [[h["loss"] for h in m.mmc_history if "loss" in h] for m in (fast, ref)]
    assert len(losses[0]) == len(losses[1]) > 0
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    assert torch.allclose(_weights(fast), _weights(ref), atol=1e-5)
    assert not torch.equal(_weights(fast), _weights(_train_with(small.copy(), monkeypatch, table=True, seed=1)))
    # calibrated like the reference; the text route is the model's own again
    assert fast.calibration["weight"] == pytest.approx(ref.calibration["weight"], abs=1e-4)
    assert fast.calibration["scale"] == pytest.approx(ref.calibration["scale"], rel=1e-3)
    assert not isinstance(fast.text_modules[0], CaptionTable)
    history = {k for h in fast.mmc_history for k in h}
    assert "eval_validation_accuracy" in history and "eval_loss" in history


def test_table_model_saves_and_loads_as_a_normal_model(small, tmp_path):
    adata = small.copy()
    model = mmc.tl.train(adata, epochs=1, batch_size=32, hidden_dim=64, seed=0, output_dir=tmp_path / "m")
    loaded = mmc.models.load(tmp_path / "m")
    X = adata.obsm["X_mmc_init"][:20]
    np.testing.assert_allclose(loaded.encode_cells(X), model.encode_cells(X), atol=1e-6)
    texts = ["a B cell", "a monocyte"]
    np.testing.assert_allclose(loaded.encode_text(texts), model.encode_text(texts), atol=1e-6)
    assert loaded.calibration["weight"] == pytest.approx(model.calibration["weight"])


def test_trainable_text_and_text_pairs_keep_the_reference_path(small):
    model = mmc.tl.train(small.copy(), epochs=1, batch_size=32, hidden_dim=64, seed=0)
    assert _train.use_caption_table(model, None, None)
    model.set_text_trainable(1)
    assert not _train.use_caption_table(model, None, None)
    model.set_text_trainable(False)
    assert not _train.use_caption_table(model, {"train": None}, None)  # dataset= input
    assert not _train.use_caption_table(model, None, object())  # text pairs


def test_caption_codes_share_rows_for_texts_that_tokenize_alike(small):
    model = mmc.tl.train(small.copy(), epochs=1, batch_size=32, hidden_dim=64, seed=0)
    texts = ["A B cell.", "a b cell.", "A monocyte, from blood.", "A B cell."]  # MiniLM is uncased
    codes, table = caption_codes(model, texts)
    assert codes[0] == codes[1] == codes[3] != codes[2] and table.shape == (2, 384)
    # each row is what the frozen text modules give that caption on its own
    for text, code in zip(texts, codes, strict=True):
        features = model.preprocess([text], task="text")
        with torch.no_grad():
            for module in model.text_modules:
                features = module(features)
        assert torch.allclose(table[code], features["sentence_embedding"][0], atol=1e-5)


def test_index_collator_gathers_rows_and_caption_ids():
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    collate = IndexCollator(preprocess_fn=None, X=X)
    batch = collate([{"cell": 3, "caption": 1, "label": 1.0}, {"cell": 7, "caption": 0, "label": 0.0}])
    assert list(batch) == ["label", "cell_input_values", "cell_task", "caption_input_ids", "caption_caption_rows",
                           "caption_task"]  # fmt: skip
    assert torch.equal(batch["cell_input_values"], torch.from_numpy(X[[3, 7]]))
    assert batch["caption_input_ids"].tolist() == [[1], [0]] and batch["caption_task"] == "text"
    assert batch["label"].dtype == torch.float32 and batch["label"].tolist() == [1.0, 0.0]


def test_fast_loader_yields_the_stock_loaders_batches():
    from datasets import Dataset

    from mmcontext.training._caption_table import IndexRows, fast_loader

    X = np.random.default_rng(0).standard_normal((50, 3)).astype(np.float32)
    ds = Dataset.from_dict({"cell": np.arange(50)[::-1].copy(), "caption": np.arange(50) % 4, "label": np.ones(50)})
    collate = IndexCollator(preprocess_fn=None, X=X)
    sampler = torch.utils.data.BatchSampler(
        torch.utils.data.RandomSampler(range(50), generator=torch.Generator().manual_seed(0)), 8, drop_last=False
    )
    stock = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate)
    fast = fast_loader(stock)
    assert isinstance(fast.dataset, IndexRows) and len(fast.dataset) == 50
    assert fast.dataset[3] == {"cell": 46, "caption": 3, "label": 1.0}
    batches_stock = list(stock)
    sampler.sampler.generator.manual_seed(0)  # the fast loader reuses the stock loader's sampler: same order
    batches_fast = list(fast)
    assert len(batches_stock) == len(batches_fast) == 7
    for a, b in zip(batches_stock, batches_fast, strict=True):
        assert list(a) == list(b)
        for key in a:
            assert a[key] == b[key] if isinstance(a[key], str) else torch.equal(a[key], b[key]), key


def test_train_mode_leaves_the_tables_frozen_text_modules_alone(small, monkeypatch):
    from mmcontext.training._text_cache import frozen_text_route

    model = mmc.tl.train(small.copy(), epochs=1, batch_size=32, hidden_dim=16, seed=0)
    encoder = model.text_modules[0]
    _, table = caption_codes(model, ["a cell"])
    with frozen_text_route(model, lambda modules: CaptionTable(modules, table)):
        walked = []
        monkeypatch.setattr(type(encoder), "train", lambda self, mode=True: walked.append(mode) or self)
        model.train()
        assert walked == []  # out of the module tree while the table stands in: not walked every step
        assert model.omics_encoder.training and not encoder.training
    monkeypatch.undo()
    model.train()  # in the tree again: the walk sets it to training, the frozen tower is put back to eval
    assert model.omics_encoder.training and not encoder.training
    assert not any(m.training for m in encoder.modules())
