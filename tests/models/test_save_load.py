"""Save -> load in a fresh process gives identical outputs; every tensor survives; push_to_hub up to the network."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import mmcontext as mmc
from mmcontext.models import MMContextEncoder

TEXTS = ["a B cell", "CD14+ Monocyte: a classical monocyte", "natural killer cells"]
SRC = str(Path(mmc.__file__).resolve().parents[1])

LOAD_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np
    from sentence_transformers import SentenceTransformer
    import mmcontext as mmc
    path, out, how = sys.argv[1:4]
    X = np.load(out + "/X.npy")
    texts = {texts!r}
    if how == "mmc":
        model = mmc.models.load(path)
        cells = model.encode_cells(X)
    else:
        model = SentenceTransformer(path, trust_remote_code=True)
        cells = model.encode(X.tolist(), task="omics", convert_to_numpy=True)
    np.save(out + "/cells.npy", cells)
    np.save(out + "/texts.npy", model.encode(texts, task="text", convert_to_numpy=True))
    np.save(out + "/query.npy", model.encode_query(texts[:1], convert_to_numpy=True))
    """
).format(texts=TEXTS)


def _fresh_process(path, X, tmp, how):
    np.save(tmp / "X.npy", X)
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(path), str(tmp), how],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    return {k: np.load(tmp / f"{k}.npy") for k in ("cells", "texts", "query")}


def _state(model):
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def adapter_model():
    """An untrained model with every module type: Transformer, Pooling, Dense adapter, OmicsEncoder, Normalize."""
    model = MMContextEncoder.build(
        12,
        text_adapter=True,
        embedding_dim=64,
        hidden_dim=32,
        seed=3,
        prompts={"query": "a cell that is ", "document": ""},
    )
    rng = np.random.default_rng(0)
    model.omics_encoder.fit_scaler(rng.normal(2.0, 3.0, size=(50, 12)))
    model.omics_encoder.set_input_arrays(
        genes=[f"g{i}" for i in range(20)], loadings=rng.normal(size=(20, 12)), mean=rng.normal(size=20)
    )
    return model


@pytest.mark.parametrize("how", ["mmc", "st"])
def test_adapter_model_round_trip_in_fresh_process(adapter_model, tmp_path, how):
    path = tmp_path / "model"
    adapter_model.save_pretrained(str(path))
    X = np.random.default_rng(1).normal(size=(7, 12)).astype(np.float32)
    got = _fresh_process(path, X, tmp_path, how)
    np.testing.assert_allclose(got["cells"], adapter_model.encode_cells(X), atol=1e-6)
    np.testing.assert_allclose(got["texts"], adapter_model.encode(TEXTS, task="text"), atol=1e-6)
    # the query prompt is stored in the config and applied by encode_query
    np.testing.assert_allclose(
        got["query"], adapter_model.encode(["a cell that is " + TEXTS[0]], task="text"), atol=1e-6
    )
    assert not np.allclose(got["query"], got["texts"][:1], atol=1e-3)


def test_trained_model_round_trip_in_fresh_process(trained_model, pbmc_split, tmp_path):
    path = tmp_path / "model"
    trained_model.save_pretrained(str(path))
    _, test = pbmc_split
    X = np.asarray(test.obsm["X_mmc_init"][:20], dtype=np.float32)
    got = _fresh_process(path, X, tmp_path, "mmc")
    np.testing.assert_allclose(got["cells"], trained_model.encode_cells(X), atol=1e-6)
    np.testing.assert_allclose(got["texts"], trained_model.encode(TEXTS, task="text"), atol=1e-6)


def test_every_tensor_survives_hub_layout_and_push_to_hub(trained_model, tmp_path, monkeypatch):
    """push_to_hub with HfApi mocked at the network boundary; load from the uploaded folder; compare every tensor."""
    import sentence_transformers.base.model as st_model

    hub = tmp_path / "hub" / "user" / "pbmc-mmcontext"
    calls = []

    class FakeApi:
        def __init__(self, token=None):
            self.token = token

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id))
            return type("RepoUrl", (), {"repo_id": repo_id})()

        def upload_folder(self, repo_id, folder_path, **kwargs):
            calls.append(("upload_folder", repo_id))
            shutil.copytree(folder_path, hub)
            url = f"https://huggingface.co/{repo_id}/commit/0"
            return type("CommitInfo", (), {"commit_url": url, "pr_url": None})()

    monkeypatch.setattr(st_model, "HfApi", FakeApi)
    url = trained_model.push_to_hub("user/pbmc-mmcontext", token="fake", exist_ok=True)
    assert url == "https://huggingface.co/user/pbmc-mmcontext/commit/0"
    assert calls == [("create_repo", "user/pbmc-mmcontext"), ("upload_folder", "user/pbmc-mmcontext")]

    files = {str(p.relative_to(hub)) for p in hub.rglob("*") if p.is_file()}
    for f in (
        "modules.json",
        "config_sentence_transformers.json",
        "README.md",
        "router_config.json",
        "omics_0_OmicsEncoder/config.json",
        "omics_0_OmicsEncoder/model.safetensors",
        "omics_0_OmicsEncoder/input_space.npz",
        "text_0_Transformer/model.safetensors",
        "1_Normalize/config.json",
    ):
        assert f in files, f"{f} missing from the uploaded folder: {sorted(files)}"
    readme = (hub / "README.md").read_text()
    for needle in (
        "## mmcontext: cells and captions",
        "**Data**: 560 cells x 765 genes",
        "bulk_labels",
        "**Input space**: genes (765 features",
        "input_space.npz",
        "**Loss**: mnrl",
        "eval_loss=",
    ):
        assert needle in readme, f"{needle!r} not in the model card"
    config = json.loads((hub / "omics_0_OmicsEncoder" / "config.json").read_text())
    assert config["input_dim"] == trained_model.input_dim and config["input_space"]["method"] == "genes"

    loaded = mmc.models.load(str(hub))
    before, after = _state(trained_model), _state(loaded)
    assert before.keys() == after.keys()
    for name, tensor in before.items():
        assert torch.equal(tensor, after[name]), f"{name} changed on load"
    arrays = loaded.omics_encoder.input_arrays
    np.testing.assert_array_equal(arrays["genes"], trained_model.omics_encoder.input_arrays["genes"])
