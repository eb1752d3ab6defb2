"""mmc.tl.train(text_pairs=...): ontology / explicit text pairs train the text tower next to the cell-caption pairs."""

from __future__ import annotations

import math

import anndata as ad
import numpy as np
import pytest
import torch
from conftest import make_adata

import mmcontext as mmc
from mmcontext.models import TextPairMNRLoss
from mmcontext.ontology import CellOntology
from mmcontext.tl._text_pairs import build_text_pairs

PAIRS = [
    ("NK cell", "natural killer cell"),
    ("B lymphocyte", "B cell"),
    ("T lymphocyte", "T cell"),
    ("CD14-positive monocyte", "monocyte"),
    ("white blood cell", "leukocyte"),
]


@pytest.fixture(scope="module")
def cl():
    return CellOntology.load()


@pytest.fixture
def prepared():
    """Tiny AnnData (60 cells; B cell, T cell, monocyte) whose cell types sit in a column no detector knows."""
    adata = make_adata(60)
    adata.obs = adata.obs.rename(columns={"cell_type": "annot_x"})
    mmc.pp.prepare(adata, caption_keys={"cell_type": "annot_x"})
    return adata


def _text_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.text_modules[0].state_dict().items()}


def _changed(before: dict, model) -> list[str]:
    after = model.text_modules[0].state_dict()
    return [k for k, v in before.items() if not torch.equal(v, after[k])]


@pytest.fixture(scope="module")
def untrained_text():
    """The text tower's weights as a new model starts (the bundled MiniLM)."""
    return _text_state(mmc.models.MMContextEncoder.build(8, hidden_dim=16, seed=0))


def test_ontology_pairs_cover_synonyms_definitions_and_ancestors(prepared, cl):
    ds, info = build_text_pairs("ontology", text_trainable=2, adata=prepared, caption_key="mmc_caption")
    pairs = set(zip(ds["anchor"], ds["positive"], strict=True))
    assert ds.column_names == ["anchor", "positive"] and len(pairs) >= 20
    # the cell type column came from what prepare recorded: 'annot_x' is not a detectable name
    assert info["cell_type_key"] == "annot_x" and info["kind"] == "ontology"
    assert info["n_pairs"] == len(ds) and info["n_labels_matched"] == 3 and info["unmatched"] == []
    b = cl.match("B cell")
    assert b.synonyms and b.definition and b.ancestors
    assert all((syn, b.name) in pairs for syn in b.synonyms if syn != b.name)
    assert (b.definition, b.name) in pairs
    assert any((b.name, anc) in pairs for anc in b.ancestors)
    # ancestors are terms of their own: each broad term's synonyms and definition are there too
    broad = [cl.term(a) for a in cl.ancestors(b.id)]
    assert [t.name for t in broad] == list(b.ancestors)
    assert any(t.definition for t in broad) and any(t.synonyms for t in broad)
    assert all((t.definition, t.name) in pairs for t in broad if t.definition)
    assert all((syn, t.name) in pairs for t in broad for syn in t.synonyms if syn != t.name)
    # only the labels of the cells that train: without the monocytes no monocyte term appears
    no_mono = (prepared.obs["annot_x"] != "monocyte").to_numpy()
    ds2, info2 = build_text_pairs(
        "ontology", text_trainable=True, adata=prepared, caption_key="mmc_caption", cells=no_mono
    )
    mono = cl.match("monocyte").name
    assert info2["n_labels_matched"] == 2 and len(ds2) < len(ds)
    assert mono in {t for p in pairs for t in p}
    assert mono not in set(ds2["anchor"]) | set(ds2["positive"])


def test_text_pair_loss_masks_repeated_texts():
    class Identity(torch.nn.Module):
        def forward(self, features):
            return {"sentence_embedding": features["input_values"]}

    torch.manual_seed(0)
    loss = TextPairMNRLoss(Identity(), scale=10.0)
    a = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    p = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)

    def feats(x, ids):  # padded ids of different widths: the loss compares the unpadded tokens
        ids = torch.tensor(ids)
        return {"input_values": x, "input_ids": ids, "attention_mask": (ids > 0).long()}

    distinct = loss(
        [feats(a, [[1, 0], [2, 0], [3, 0], [4, 0]]), feats(p, [[5, 0, 0], [6, 0, 0], [7, 0, 0], [8, 9, 0]])], None
    )
    logits = 10.0 * a @ p.T
    assert torch.allclose(distinct, torch.nn.functional.cross_entropy(logits, torch.arange(4)), atol=1e-5)
    # rows 0 and 1 share a positive, rows 2 and 3 an anchor (one name, two ancestors): not each other's negatives
    masked = loss([feats(a, [[1, 0], [2, 0], [3, 0], [3, 0]]), feats(p, [[5, 0], [5, 0], [7, 0], [8, 0]])], None)
    expected = logits.clone()
    expected[0, 1] = expected[1, 0] = expected[2, 3] = expected[3, 2] = float("-inf")
    assert torch.allclose(masked, torch.nn.functional.cross_entropy(expected, torch.arange(4)), atol=1e-5)
    # a candidate equal to the anchor itself is no negative either
    self_text = loss([feats(a, [[1, 0], [5, 0], [3, 0], [4, 0]]), feats(p, [[5, 0], [6, 0], [7, 0], [8, 0]])], None)
    expected = logits.clone()
    expected[1, 0] = float("-inf")  # anchor 1 is text 5, the positive of row 0
    assert torch.allclose(self_text, torch.nn.functional.cross_entropy(expected, torch.arange(4)), atol=1e-5)


def _pair_retrieval(model, pairs) -> float:
    """Fraction of anchors whose own positive is the nearest of all distinct positives."""
    positives = sorted({b for _, b in pairs})
    A = model.encode([a for a, _ in pairs], task="text", convert_to_numpy=True)
    P = model.encode(positives, task="text", convert_to_numpy=True)
    nearest = np.asarray(positives)[(A @ P.T).argmax(axis=1)]
    return float(np.mean(nearest == np.asarray([b for _, b in pairs])))


def test_train_with_ontology_pairs_trains_the_text_tower(prepared, untrained_text, tmp_path):
    ds, _ = build_text_pairs("ontology", text_trainable=2, adata=prepared, caption_key="mmc_caption")
    pairs = list(zip(ds["anchor"], ds["positive"], strict=True))
    model = mmc.tl.train(
        prepared,
        epochs=2,
        seed=0,
        text_trainable=2,
        text_pairs="ontology",
        text_learning_rate=5e-4,
        output_dir=tmp_path / "m",
    )
    rec = prepared.uns["mmcontext"]["train"]["text_pairs"]
    assert rec["kind"] == "ontology" and rec["n_pairs"] == len(pairs) and rec["cell_type_key"] == "annot_x"
    assert model.mmc_training["text_pairs"]["n_pairs"] == len(pairs)
    # both datasets trained: every epoch has the cell batches and the pair batches
    n_train = model.mmc_training["n_train"]
    assert model.mmc_history[-1]["step"] == 2 * (math.ceil(n_train / 32) + math.ceil(len(pairs) / 32))
    # validation still runs on cells alone, under the usual names
    assert any("eval_loss" in e and "eval_validation_accuracy" in e for e in model.mmc_history)
    changed = _changed(untrained_text, model)
    assert changed and all("layer.4" in k or "layer.5" in k for k in changed)  # top two layers only
    # the pairs taught the text tower: synonyms / definitions / children find their own partner more often
    fresh = mmc.models.MMContextEncoder.build(prepared.obsm["X_mmc_init"].shape[1], hidden_dim=16, seed=0)
    assert _pair_retrieval(model, pairs) > _pair_retrieval(fresh, pairs)
    # saved and reloaded (fresh model object): the same text and cell embeddings
    loaded = mmc.models.load(tmp_path / "m")
    texts = ["natural killer cells", "B lymphocyte", "A monocyte"]
    np.testing.assert_allclose(loaded.encode(texts, task="text"), model.encode(texts, task="text"), atol=1e-5)
    X = prepared.obsm["X_mmc_init"][:5]
    np.testing.assert_allclose(loaded.encode_cells(X), model.encode_cells(X), atol=1e-5)
    # the provenance is h5ad-serialisable
    prepared.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad").uns["mmcontext"]["train"]["text_pairs"]
    assert back["kind"] == "ontology" and int(back["n_pairs"]) == len(pairs)


def test_default_training_leaves_the_text_tower_alone(prepared, untrained_text):
    model = mmc.tl.train(prepared, epochs=1, seed=0)
    assert _changed(untrained_text, model) == []
    assert prepared.uns["mmcontext"]["train"]["text_pairs"] == "None"  # None, as h5ad stores it
    assert model.mmc_training["text_pairs"] is None


@pytest.mark.parametrize("as_dataset", [False, True])
def test_explicit_pairs_list_or_dataset(prepared, untrained_text, as_dataset):
    from datasets import Dataset

    pairs = Dataset.from_dict({"q": [a for a, _ in PAIRS], "d": [b for _, b in PAIRS]}) if as_dataset else PAIRS
    model = mmc.tl.train(prepared, epochs=1, seed=0, text_trainable=1, text_pairs=pairs, validation_split=0)
    rec = model.mmc_training["text_pairs"]
    assert rec == {"kind": "dataset" if as_dataset else "pairs", "n_pairs": len(PAIRS)}
    n_train = model.mmc_training["n_train"]
    assert model.mmc_history[-1]["step"] == math.ceil(n_train / 32) + 1
    changed = _changed(untrained_text, model)
    assert changed and all("layer.5" in k for k in changed)


def test_text_pairs_with_a_dataset_by_reference(prepared, tmp_path):
    ds = mmc.pp.build_dataset(prepared, tmp_path / "stores", validation_size=0.2)
    with pytest.raises(ValueError, match="needs adata="):
        mmc.tl.train(dataset=ds, text_trainable=2, text_pairs="ontology")
    model = mmc.tl.train(prepared, dataset=ds, epochs=1, text_trainable=2, text_pairs="ontology", hidden_dim=16)
    assert model.mmc_training["text_pairs"]["cell_type_key"] == "annot_x"
    assert any("eval_loss" in e for e in model.mmc_history)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"text_pairs": "ontology"}, r"text_trainable=2 .*text_trainable=True"),
        ({"text_pairs": PAIRS, "text_trainable": 0}, "freezes it"),
        ({"text_pairs": [("NK cell", 3)], "text_trainable": 2}, r"text_pairs\[0\].*non-empty strings"),
        ({"text_pairs": [("NK cell", "")], "text_trainable": 2}, "non-empty strings"),
        ({"text_pairs": [("a", "b", "c")], "text_trainable": 2}, r"must be a pair \(text_a, text_b\)"),
        ({"text_pairs": ["ab", "cd"], "text_trainable": 2}, "must be a pair"),
        ({"text_pairs": [], "text_trainable": 2}, "at least 2"),
        ({"text_pairs": "synonyms", "text_trainable": 2}, "is not 'ontology'"),
        ({"text_pairs": {"a": "b"}, "text_trainable": 2}, "got dict"),
    ],
)
def test_bad_text_pairs(prepared, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mmc.tl.train(prepared, epochs=1, **kwargs)
    assert "train" not in prepared.uns["mmcontext"]


def test_bad_text_pairs_dataset_and_labels(prepared):
    from datasets import Dataset

    three = Dataset.from_dict({"a": ["x", "y"], "b": ["p", "q"], "label": [1, 0]})
    with pytest.raises(ValueError, match="exactly two text columns"):
        mmc.tl.train(prepared, text_trainable=2, text_pairs=three)
    nulls = Dataset.from_dict({"a": ["x", None], "b": ["p", "q"]})
    with pytest.raises(ValueError, match="non-empty strings"):
        mmc.tl.train(prepared, text_trainable=2, text_pairs=nulls)
    unknown = prepared.copy()
    unknown.obs["annot_x"] = unknown.obs["annot_x"].cat.rename_categories(["qqq", "zzz", "xyzzy"])
    with pytest.raises(ValueError, match="matches a Cell Ontology term"):
        mmc.tl.train(unknown, text_trainable=2, text_pairs="ontology")
