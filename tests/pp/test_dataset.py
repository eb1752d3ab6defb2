"""mmc.pp.build_dataset: pairs and multiplets by reference, grouped splits, truly-different negatives."""

from __future__ import annotations

import numpy as np
import pytest

import mmcontext as mmc
from mmcontext.data._dataset_meta import sampler_for
from mmcontext.training._inputs import training_inputs


@pytest.fixture(scope="module")
def prepared():
    adata = mmc.datasets.pbmc68k_reduced()
    mmc.pp.prepare(adata, caption_keys={"cell_type": "bulk_labels"})
    return adata


def _label_of(adata):
    return dict(zip("adata0:" + adata.obs_names.astype(str), adata.obs["bulk_labels"].astype(str), strict=True))


def _caption_labels(adata):
    return adata.obs.groupby(adata.obs["mmc_caption"].astype(str), observed=True)["bulk_labels"].agg(
        lambda s: set(s.astype(str))
    )


def test_multiplet_negatives_are_truly_different(prepared, tmp_path):
    ds = mmc.pp.build_dataset(prepared, tmp_path / "stores", n_negatives=3, hard_negatives=True, seed=0)
    train = ds["train"]
    assert train.column_names == ["cell", "caption", "negative_1", "negative_2", "negative_3"]
    label_of, cap_labels = _label_of(prepared), _caption_labels(prepared)
    store = mmc.models.open_store(tmp_path / "stores" / "adata0")
    n_checked = 0
    for row in train:
        lab = label_of[row["cell"]]
        for j in (1, 2, 3):
            neg = row[f"negative_{j}"]
            assert neg != row["caption"]
            assert lab not in cap_labels[neg]  # no cell with this caption has the anchor's label
            n_checked += 1
    assert n_checked == 3 * len(train) > 1500
    # cells are references resolved through the store, never raw text
    refs = train["cell"][:10]
    assert all(r.startswith("adata0:") for r in refs)
    idx = prepared.obs_names.get_indexer([r.split(":", 1)[1] for r in refs])
    np.testing.assert_allclose(store.rows([r.split(":", 1)[1] for r in refs]), prepared.obsm["X_mmc_init"][idx])
    inputs = training_inputs(ds)
    assert inputs["router_mapping"] == {
        "cell": "omics",
        "caption": "text",
        "negative_1": "text",
        "negative_2": "text",
        "negative_3": "text",
    }


def test_hard_negatives_are_the_most_similar(prepared, tmp_path):
    hard = mmc.pp.build_dataset(prepared, tmp_path, n_negatives=1, hard_negatives=True, negative_pool=1)["train"]
    easy = mmc.pp.build_dataset(prepared, tmp_path, n_negatives=1)["train"]
    from mmcontext.data._negatives import _caption_similarity

    caps = sorted(set(hard["caption"]) | set(hard["negative_1"]))
    sim = _caption_similarity(caps)
    pos = {c: i for i, c in enumerate(caps)}

    def mean_sim(d):
        return np.mean([sim[pos[a], pos[b]] for a, b in zip(d["caption"], d["negative_1"], strict=True)])

    assert mean_sim(hard) > mean_sim(easy) + 0.05


def test_seeds_and_epochs_draw_different_negatives(prepared, tmp_path):
    a = mmc.pp.build_dataset(prepared, tmp_path, n_negatives=2, seed=0)["train"]
    b = mmc.pp.build_dataset(prepared, tmp_path, n_negatives=2, seed=1)["train"]
    a_again = mmc.pp.build_dataset(prepared, tmp_path, n_negatives=2, seed=0)["train"]
    assert a["negative_1"] == a_again["negative_1"]  # reproducible
    common = set(a["cell"]) & set(b["cell"])
    na = dict(zip(a["cell"], a["negative_1"], strict=True))
    nb = dict(zip(b["cell"], b["negative_1"], strict=True))
    assert np.mean([na[c] != nb[c] for c in common]) > 0.5
    e1 = mmc.pp.resample_negatives(a, epoch=1)
    assert e1["cell"] == a["cell"] and e1["caption"] == a["caption"]
    assert np.mean(np.array(e1["negative_1"]) != np.array(a["negative_1"])) > 0.5
    np.testing.assert_array_equal(mmc.pp.resample_negatives(a, epoch=0)["negative_1"], a["negative_1"])
    # the training transform follows the epoch set by its callback
    inputs = training_inputs(a)
    sampler = inputs["samplers"][0]
    assert inputs["train"][:5]["negative_1"] == a["negative_1"][:5]
    sampler.epoch = 1
    assert inputs["train"][:5]["negative_1"] == e1["negative_1"][:5]


def test_pairs(prepared, tmp_path):
    ds = mmc.pp.build_dataset(prepared, tmp_path, shape="pairs", n_negatives=2, validation_size=0.1)
    train = ds["train"]
    assert train.column_names == ["cell", "caption", "label"]
    labels = np.array(train["label"])
    assert set(labels) == {0.0, 1.0} and labels.sum() * 3 == len(labels)
    own = dict(zip("adata0:" + prepared.obs_names.astype(str), prepared.obs["mmc_caption"].astype(str), strict=True))
    label_of, cap_labels = _label_of(prepared), _caption_labels(prepared)
    for cell, cap, y in zip(train["cell"], train["caption"], labels, strict=True):
        if y == 1.0:
            assert cap == own[cell]
        else:
            assert cap != own[cell] and label_of[cell] not in cap_labels[cap]
    with pytest.raises(ValueError, match="loss='contrastive'"):
        training_inputs(ds, loss="mnrl")
    assert sampler_for(train) is None


def test_split_by_donor_and_several_adata(tmp_path):
    from tests.conftest import make_adata

    parts = {}
    for i in range(2):
        ad = make_adata(90, 12, seed=i, n_types=3)
        ad.obs["donor"] = [f"donor{(j // 3) % 6}" for j in range(ad.n_obs)]
        ad.obsm["X_init"] = ad.X[:, :6].copy()
        ad.obs["mmc_caption"] = ("a " + ad.obs["cell_type"].astype(str) + f" from study {i}").values
        parts[f"study{i}"] = ad
    ds = mmc.pp.build_dataset(
        parts,
        tmp_path,
        use_rep="X_init",
        split_by="donor",
        validation_size=0.15,
        test_size=0.3,
        label_key="cell_type",
        seed=3,
    )
    assert set(ds) == {"train", "validation", "test"}
    donor = {f"{k}:{n}": d for k, ad in parts.items() for n, d in zip(ad.obs_names, ad.obs["donor"], strict=True)}
    donors = {s: {donor[c] for c in ds[s]["cell"]} for s in ds}
    assert donors["train"].isdisjoint(donors["test"]) and donors["train"].isdisjoint(donors["validation"])
    assert donors["validation"].isdisjoint(donors["test"])
    assert {c.split(":")[0] for c in ds["train"]["cell"]} == {"study0", "study1"}
    assert sum(len(ds[s]) for s in ds) == 180
    # a caption of the same cell type from the other study is never a negative
    for row in ds["train"]:
        assert row["negative_1"].split(" from ")[0] != row["caption"].split(" from ")[0]
    # save_to_disk / load_from_disk keep the columns and the stores
    from datasets import load_from_disk

    ds.save_to_disk(str(tmp_path / "ds"))
    back = load_from_disk(str(tmp_path / "ds"))
    assert back["train"]["negative_1"] == ds["train"]["negative_1"]
    inputs = training_inputs(back)
    assert set(inputs["stores"]) == {"study0", "study1"} and inputs["dim"] == 6


def test_errors_leave_nothing_written(tiny, tmp_path):
    tiny.obs["mmc_caption"] = "the same caption"
    tiny.obsm["X_init"] = tiny.X[:, :4].copy()
    with pytest.raises(ValueError, match="no valid negative"):
        mmc.pp.build_dataset(tiny, tmp_path / "s", use_rep="X_init", label_key="cell_type")
    with pytest.raises(KeyError, match="nope"):
        mmc.pp.build_dataset(tiny, tmp_path / "s", use_rep="X_init", split_by="nope")
    with pytest.raises(ValueError, match="shape"):
        mmc.pp.build_dataset(tiny, tmp_path / "s", use_rep="X_init", shape="triplets")
    assert not (tmp_path / "s").exists()


def test_train_on_dataset_redraws_negatives_each_epoch(prepared, tmp_path, monkeypatch):
    from mmcontext.data._negatives import NegativeSampler

    seen = []
    orig = NegativeSampler.transform

    def spy(self, batch):
        seen.append(self.epoch)
        return orig(self, batch)

    monkeypatch.setattr(NegativeSampler, "transform", spy)
    sub = prepared[:300].copy()
    ds = mmc.pp.build_dataset(sub, tmp_path / "stores", n_negatives=1, validation_size=0.1)
    model = mmc.tl.train(dataset=ds, epochs=2, batch_size=32, hidden_dim=64)
    assert {0, 1} <= set(seen)
    assert model.mmc_training["dataset_shape"] == "multiplets"
    assert set(model.omics_encoder.stores) == {"adata0"}
    # label probabilities calibrated on the dataset's validation split (cells by reference)
    assert model.calibration["n_cells"] == len(ds["validation"]) and 0 <= model.calibration["weight"] <= 1
    # the trained model resolves references of the held-out split through the remembered store
    emb = model.encode(ds["validation"]["cell"][:4], task="omics")
    assert emb.shape == (4, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
