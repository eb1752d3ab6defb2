from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from mmcontext.models import ArrayStore, CaptionAwareMNRLoss, MMContextEncoder, load, save_model


@pytest.fixture(scope="module")
def small_model():
    return MMContextEncoder.build(12, hidden_dim=16, seed=1)


def test_build_routes_texts_and_cells(small_model):
    X = np.random.default_rng(0).normal(size=(5, 12)).astype(np.float32)
    fast = small_model.encode_cells(X)
    via_encode = small_model.encode(X.tolist(), task="omics")
    via_dict = small_model.encode([{"omics": x} for x in X])
    np.testing.assert_allclose(fast, via_encode, atol=1e-6)
    np.testing.assert_allclose(fast, via_dict, atol=1e-6)
    np.testing.assert_allclose(fast, small_model.encode(X, task="omics"), atol=1e-6)  # a matrix, not audio
    np.testing.assert_allclose(fast, small_model.encode(list(X), task="omics"), atol=1e-6)
    text = small_model.encode_text(["a B cell", "a T cell"])
    assert text.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1, atol=1e-5)
    assert small_model.similarity(fast, text).shape == (5, 2)


def test_cell_references_resolve_through_the_processor(small_model):
    X = np.arange(36, dtype=np.float32).reshape(3, 12)
    small_model.processor.add_store(ArrayStore("s", ["a", "b", "c"], X))
    try:
        by_ref = small_model.encode(["s:c", "a"], task="omics")
        np.testing.assert_allclose(by_ref, small_model.encode_cells(X[[2, 0]]), atol=1e-6)
        with pytest.raises(KeyError, match="not found in store"):
            small_model.encode(["s:zzz"], task="omics")
    finally:
        small_model.processor.remove_store("s")
    with pytest.raises(KeyError, match="no vector store"):
        small_model.encode(["a"], task="omics")


def test_wrong_input_dimension_is_named(small_model):
    with pytest.raises(ValueError, match="expects 12"):
        small_model.encode_cells(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="length 12"):
        small_model.encode([[0.0] * 5], task="omics")


def test_save_then_load_in_a_fresh_process_gives_identical_embeddings(small_model, tmp_path):
    X = np.random.default_rng(1).normal(size=(8, 12)).astype(np.float32)
    texts = ["natural killer cells", "a monocyte"]
    path = save_model(small_model, tmp_path / "model")
    np.save(tmp_path / "X.npy", X)
    script = textwrap.dedent(
        f"""
        import json, numpy as np
        from sentence_transformers import SentenceTransformer
        import mmcontext as mmc
        X = np.load({str(tmp_path / "X.npy")!r})
        m = mmc.models.load({str(path)!r})
        st = SentenceTransformer({str(path)!r}, trust_remote_code=True)
        out = dict(cells=m.encode_cells(X).tolist(), text=m.encode_text({texts!r}).tolist(),
                   st_cells=st.encode(X.tolist(), task="omics").tolist(), cls=type(m).__name__)
        print(json.dumps(out))
        """
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["cls"] == "MMContextEncoder"
    np.testing.assert_allclose(out["cells"], small_model.encode_cells(X), atol=1e-6)
    np.testing.assert_allclose(out["st_cells"], small_model.encode_cells(X), atol=1e-6)
    np.testing.assert_allclose(out["text"], small_model.encode_text(texts), atol=1e-6)


def test_every_tensor_survives_save_and_load(small_model, tmp_path):
    with torch.no_grad():
        small_model.omics_encoder.input_mean.fill_(0.5)
    path = save_model(small_model, tmp_path / "m")
    loaded = load(str(path))
    a, b = small_model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_load_refuses_folders_that_are_not_mmcontext_models(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"modules\.json"):
        load(str(tmp_path / "empty"))


def test_save_model_replaces_atomically(small_model, tmp_path):
    target = tmp_path / "m"
    save_model(small_model, target)
    (target / "marker").write_text("old")
    save_model(small_model, target)
    assert not (target / "marker").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary folders left


def test_caption_aware_loss_masks_repeated_captions_only(small_model):
    loss = CaptionAwareMNRLoss(small_model)
    torch.manual_seed(0)
    cells = {"input_values": torch.randn(4, 12), "task": "omics"}
    distinct = small_model.preprocess(["a", "b", "c", "d"], task="text")
    repeated = small_model.preprocess(["a", "a", "c", "d"], task="text")
    plain = __import__("sentence_transformers").sentence_transformer.losses.MultipleNegativesRankingLoss(small_model)
    small_model.eval()
    with torch.no_grad():
        same = loss([dict(cells), dict(distinct)], None)
        ref = plain([dict(cells), dict(distinct)], None)
        masked = loss([dict(cells), dict(repeated)], None)
        unmasked = plain([dict(cells), dict(repeated)], None)
    assert same.item() == pytest.approx(ref.item(), abs=1e-6)
    assert masked.item() < unmasked.item()


def test_column_stats_merge_chunks_like_numpy_on_the_selected_rows():
    from mmcontext.models._layers import column_stats

    rng = np.random.default_rng(0)
    X = (rng.standard_normal((1001, 4)) * [1, 10, 1e-3, 0] + [0, 5, -3, 2]).astype(np.float32)
    rows = rng.permutation(1001)[:777]
    for chunk in (1, 100, 10_000):
        mean, std = column_stats(X, rows, chunk=chunk)
        ref = X[rows].astype(np.float64)
        np.testing.assert_allclose(mean, ref.mean(axis=0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(std, ref.std(axis=0), rtol=1e-9, atol=1e-12)
    mean, std = column_stats(X, chunk=64)
    np.testing.assert_allclose(std, X.astype(np.float64).std(axis=0), rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="No rows"):
        column_stats(X, np.array([], dtype=int))


def test_caption_aware_loss_normalises_outputs_a_model_left_unnormalised(small_model):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from mmcontext.models._losses import ends_normalised

    torch.manual_seed(0)
    cells = {"input_values": torch.randn(4, 12) * 5, "task": "omics"}
    texts = small_model.preprocess(["a", "b", "c", "d"], task="text")
    small_model.eval()
    norm = small_model._modules.popitem()  # the final Normalize: outputs are no longer unit vectors
    try:
        assert not ends_normalised(small_model)
        with torch.no_grad():
            got = CaptionAwareMNRLoss(small_model)([dict(cells), dict(texts)], None)
            ref = MultipleNegativesRankingLoss(small_model)([dict(cells), dict(texts)], None)
    finally:
        small_model._modules[norm[0]] = norm[1]
    assert ends_normalised(small_model) and not ends_normalised(torch.nn.Identity())
    assert got.item() == pytest.approx(ref.item(), abs=1e-5)
