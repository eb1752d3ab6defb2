"""Losses: the make_loss factory, CLIPLoss, training columns, and tl.train(loss=...)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_adata

import mmcontext as mmc
from mmcontext.models._losses import CLIPLoss, loss_columns, make_loss


def test_loss_columns_negatives_are_other_captions():
    caps = ["a", "a", "b", "c", "b", "a"] * 20
    cells = [f"c{i}" for i in range(len(caps))]
    tri = loss_columns("triplet", cells, caps, seed=1)
    assert tri["cell"] == cells and tri["caption"] == caps
    assert all(n != c for n, c in zip(tri["negative"], caps, strict=True))
    assert set(tri["negative"]) == {"a", "b", "c"}  # every other caption gets drawn
    con = loss_columns("contrastive", cells, caps, seed=1)
    assert len(con["cell"]) == 2 * len(cells) and sum(con["label"]) == len(cells)
    assert all(
        (lab == 1.0) == (c == caps[i % len(caps)])
        for i, (c, lab) in enumerate(zip(con["caption"], con["label"], strict=True))
    )
    with pytest.raises(ValueError, match="all cells share one caption"):
        loss_columns("triplet", cells[:3], ["x"] * 3)


def test_make_loss_validates():
    adata = make_adata()
    mmc.pp.prepare(adata, caption_keys={"cell_type": "cell_type"}, ontology=False)
    with pytest.raises(ValueError, match="not one of"):
        mmc.tl.train(adata, loss="infonce")
    with pytest.raises(ValueError, match="matryoshka_dims must be positive ints"):
        mmc.tl.train(adata, loss="mnrl", matryoshka_dims=[0])
    assert "train" not in adata.uns["mmcontext"]


def test_clip_loss_symmetric_masked_and_learns_temperature():
    class Identity(torch.nn.Module):
        def forward(self, features):
            return {"sentence_embedding": features["input_values"]}

    torch.manual_seed(0)
    model = Identity()
    loss = CLIPLoss(model, temperature=0.1)
    cells = torch.nn.functional.normalize(torch.randn(6, 4), dim=1).requires_grad_()
    texts = torch.nn.functional.normalize(torch.randn(6, 4), dim=1)
    ids = torch.tensor([[1], [2], [3], [4], [5], [6]])
    value = loss([{"input_values": cells}, {"input_values": texts, "input_ids": ids}], None)
    logits = 10.0 * cells @ texts.T
    t = torch.arange(6)
    expected = (torch.nn.functional.cross_entropy(logits, t) + torch.nn.functional.cross_entropy(logits.T, t)) / 2
    assert torch.allclose(value, expected, atol=1e-5)
    value.backward()
    assert loss.logit_scale.grad is not None and loss.logit_scale.grad.abs() > 0
    # texts 0 and 1 identical captions: neither counts as the other's negative
    dup = torch.tensor([[1], [1], [3], [4], [5], [6]])
    masked = loss([{"input_values": cells}, {"input_values": texts, "input_ids": dup}], None)
    logits[0, 1] = logits[1, 0] = float("-inf")
    exp2 = (torch.nn.functional.cross_entropy(logits, t) + torch.nn.functional.cross_entropy(logits.T, t)) / 2
    assert torch.allclose(masked, exp2, atol=1e-5)


@pytest.fixture(scope="module")
def small_split(pbmc_split):
    train, test = pbmc_split
    return train.copy(), test.copy()  # training writes obs['mmc_split']: never into the session's shared split


@pytest.mark.parametrize("loss", ["cached_mnrl", "contrastive", "triplet", "clip"])
def test_each_loss_trains_to_zero_shot_accuracy(small_split, loss):
    train, test = small_split
    model = mmc.tl.train(train, loss=loss, epochs=3, seed=0, validation_split=0)
    assert model.mmc_training["loss"] == loss
    steps = [h for h in model.mmc_history if "loss" in h]
    assert steps and all(np.isfinite(float(h["loss"])) for h in steps)
    test = test.copy()
    mmc.tl.annotate(test, model, "bulk_labels")
    table = mmc.tl.evaluate(test, label_key="bulk_labels")
    acc = table[(table["metric"] == "accuracy") & (table["subject"] == "mmc_label")]["value"].item()
    assert acc > 0.6, f"{loss}: held-out zero-shot accuracy {acc:.3f}"


def test_clip_temperature_is_trained(small_split):
    train, _ = small_split
    model = mmc.tl.train(train[:200].copy(), epochs=1, seed=0, validation_split=0)
    loss = make_loss("clip", model)
    before = float(loss.logit_scale)
    from sentence_transformers import SentenceTransformerTrainingArguments  # noqa: F401

    from mmcontext.training._trainer import MMContextTrainer

    trainer = MMContextTrainer.__new__(MMContextTrainer)
    trainer.optimizer, trainer.model, trainer.loss, trainer.text_learning_rate = None, model, loss, 2e-5

    class Args:
        learning_rate, weight_decay, adam_beta1, adam_beta2, adam_epsilon = 1e-3, 0.0, 0.9, 0.999, 1e-8

    trainer.args = Args()
    opt = trainer.create_optimizer()
    assert any(p is loss.logit_scale for g in opt.param_groups for p in g["params"])
    assert before == pytest.approx(np.log(1 / 0.07), rel=1e-5)


def test_matryoshka_truncated_embeddings_still_align(small_split):
    train, test = small_split
    model = mmc.tl.train(train, epochs=3, seed=0, validation_split=0, matryoshka_dims=[64])
    assert model.mmc_training["matryoshka_dims"] == [64]
    cells = model.encode_cells(test.obsm["X_mmc_init"], normalize=False)[:, :64]
    cells /= np.linalg.norm(cells, axis=1, keepdims=True)
    labels = list(test.obs["bulk_labels"].cat.categories)
    from mmcontext.tl._texts import label_texts

    texts = model.encode([t for g in label_texts(labels) for t in g], task="text", truncate_dim=64)
    assert texts.shape[1] == 64
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    pred = np.asarray(labels)[np.argmax(cells @ texts.T, axis=1)]
    acc = (pred == test.obs["bulk_labels"].astype(str).to_numpy()).mean()
    assert acc > 0.6, f"64-d truncated accuracy {acc:.3f}"


def test_train_triplet_negatives_are_captions_of_another_cell_type(monkeypatch):
    """tl.train(adata, loss="triplet") draws as build_dataset does: never a caption of the cell's own type."""
    import anndata as ad
    import numpy as np
    import pandas as pd

    import mmcontext as mmc
    from mmcontext.models import _losses

    rng = np.random.default_rng(0)
    types = np.array(["B cell", "T cell", "NK cell"])[rng.integers(0, 3, 60)]
    donors = np.array(["d1", "d2"])[rng.integers(0, 2, 60)]
    captions = [f"A {t} of donor {d}." for t, d in zip(types, donors, strict=True)]
    obs = pd.DataFrame({"cell_type": types, "caption": captions})
    obs.index = [f"c{i}" for i in range(60)]
    adata = ad.AnnData(obs=obs)
    adata.obsm["X_pca"] = rng.standard_normal((60, 5)).astype(np.float32)
    seen = []
    real = _losses.loss_columns
    monkeypatch.setattr(_losses, "loss_columns", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    mmc.tl.train(adata, caption_key="caption", use_rep="X_pca", loss="triplet", epochs=1, hidden_dim=8)
    assert seen
    type_of = dict(zip(obs["caption"], obs["cell_type"], strict=False))
    for cols in seen:
        assert all(type_of[c] != type_of[n] for c, n in zip(cols["caption"], cols["negative"], strict=True))
