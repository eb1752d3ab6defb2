"""tl.embed streamed from expression: backed / sparse AnnData in row chunks equals prepare(reference=) + embed."""

from __future__ import annotations

import hashlib

import anndata as ad
import numpy as np
import pytest
from conftest import make_adata
from scipy import sparse

import mmcontext as mmc
from mmcontext._validation import adata_digest
from mmcontext.pp import _reference


def _in_memory(adata, model, **kw):
    """The in-memory path: rebuild the model's input space for all cells at once, then embed."""
    out = mmc.pp.prepare(adata, reference=model, caption_keys=False, copy=True, **kw)
    mmc.tl.embed(out, model)
    return out.obsm["X_mmc"]


def _backed(adata, path, mode="r"):
    adata.write_h5ad(path)
    return ad.read_h5ad(path, backed=mode)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def panel_model():
    """An untrained gene-panel model over gene0..gene29 of `make_adata` (fast; the arithmetic is what is tested)."""
    ref = make_adata(60, 30)
    mmc.pp.prepare(ref, method="genes", caption_keys=False)
    model = mmc.models.MMContextEncoder.build(30, hidden_dim=16, n_layers=2, seed=0, device="cpu")
    model.omics_encoder.set_input_arrays(genes=ref.var_names)
    model.omics_encoder.fit_scaler(ref.obsm["X_mmc_init"])
    return model


@pytest.fixture(scope="module")
def pca_model():
    """A model whose input space is 6 PCA components over gene0..gene29."""
    ref = make_adata(60, 30)
    mmc.pp.prepare(ref, method="pca", n_components=6, caption_keys=False)
    space = _reference.space_from_adata(ref)
    model = mmc.models.MMContextEncoder.build(6, hidden_dim=16, n_layers=2, seed=1, device="cpu")
    model.omics_encoder.set_input_arrays(**space.arrays())
    model.omics_encoder.fit_scaler(ref.obsm["X_mmc_init"])
    return model


@pytest.mark.parametrize("chunk_size", [1, 97, 139, 10_000])
def test_backed_file_equals_in_memory_path_with_trained_model(trained_model, tmp_path, chunk_size):
    raw = mmc.datasets.pbmc68k_reduced()  # unprepared: only expression by gene name
    expected = _in_memory(raw, trained_model)
    backed = _backed(raw, tmp_path / "pbmc.h5ad")
    mmc.tl.embed(backed, trained_model, chunk_size=chunk_size, out=tmp_path / "emb.npy")
    got = np.load(tmp_path / "emb.npy")
    assert got.dtype == np.float32 and got.shape == (700, trained_model.omics_encoder.output_dim)
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    assert "X_mmc" not in backed.obsm and "mmcontext" not in backed.uns  # out=: adata untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.npy", "pbmc.h5ad"]  # no temporary files left


@pytest.mark.parametrize("backed", [False, True], ids=["in-memory", "backed"])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_input_equals_dense(panel_model, tmp_path, backed, fmt, caplog):
    dense = make_adata(103, 30, seed=3)
    dense.X[dense.X < 1] = 0  # ~half zeros
    expected = _in_memory(dense, panel_model)
    adata = dense.copy()
    adata.X = sparse.csr_matrix(adata.X) if fmt == "csr" else sparse.csc_matrix(adata.X)
    if backed:
        adata = _backed(adata, tmp_path / "s.h5ad", mode="r+")
    with caplog.at_level("WARNING", logger="mmcontext"):
        mmc.tl.embed(adata, panel_model, chunk_size=10)  # 103 cells: 10 full chunks and one of 3
    np.testing.assert_allclose(adata.obsm["X_mmc"], expected, atol=1e-6, rtol=0)
    assert ("is CSC" in caplog.text) == (fmt == "csc")


@pytest.mark.parametrize("n_genes", [30, 27], ids=["shuffled", "shuffled-3-missing"])
def test_pca_space_streamed_equals_prepare_reference(pca_model, tmp_path, n_genes):
    new = make_adata(83, 30, seed=5)[:, np.random.default_rng(0).permutation(30)[:n_genes]].copy()
    for fill in ("mean", "zero"):
        expected = _in_memory(new, pca_model, fill=fill)
        backed = _backed(new, tmp_path / f"{fill}.h5ad")
        mmc.tl.embed(backed, pca_model, fill=fill, chunk_size=16, out=tmp_path / f"{fill}.npy")
        np.testing.assert_allclose(np.load(tmp_path / f"{fill}.npy"), expected, atol=1e-6, rtol=0)
    same = np.allclose(np.load(tmp_path / "mean.npy"), np.load(tmp_path / "zero.npy"))
    assert same == (n_genes == 30)  # fill only matters for missing genes


def test_projected_panel_never_shares_memory_with_x(panel_model):
    adata = make_adata(20, 30)  # the model's genes, in order: no column selection needed
    mmc.pp.prepare(adata, reference=panel_model, caption_keys=False)
    np.testing.assert_array_equal(adata.obsm["X_mmc_init"], adata.X)
    assert not np.shares_memory(adata.obsm["X_mmc_init"], adata.X)


def test_missing_genes_handled_as_prepare_reference(panel_model, caplog):
    new = make_adata(50, 30, seed=2)[:, 4:].copy()  # gene0..gene3 missing
    for fill in ("mean", "zero"):
        adata = new.copy()
        with caplog.at_level("WARNING", logger="mmcontext"):
            caplog.clear()
            mmc.tl.embed(adata, panel_model, fill=fill, chunk_size=8)
        assert caplog.text.count("4 of 30 reference genes are not in adata.var_names") == 1
        np.testing.assert_allclose(adata.obsm["X_mmc"], _in_memory(new, panel_model, fill=fill), atol=1e-6, rtol=0)
        prov = adata.uns["mmcontext"]["embed"]
        assert prov["use_rep"] == "X" and prov["fill"] == fill and prov["n_missing_genes"] == 4
        assert prov["chunk_size"] == 8 and prov["input_space"] == "genes" and prov["source"] == "adata.X"


def test_expression_read_in_bounded_chunks(panel_model, monkeypatch):
    seen = []
    project = _reference.project

    def spy(X, *args, **kwargs):
        assert sparse.issparse(X)  # the sparse chunk, not a densified matrix
        seen.append(X.shape[0])
        return project(X, *args, **kwargs)

    monkeypatch.setattr(_reference, "project", spy)
    adata = make_adata(103, 30)
    adata.X = sparse.csr_matrix(adata.X)
    mmc.tl.embed(adata, panel_model, chunk_size=25)
    assert seen == [25, 25, 25, 25, 3]


def test_use_rep_none_prefers_the_prepared_embedding_else_expression(panel_model):
    adata = make_adata(40, 30)
    mmc.tl.embed(adata, panel_model)  # unprepared: built from X
    from_x = adata.obsm["X_mmc"].copy()
    assert adata.uns["mmcontext"]["embed"]["use_rep"] == "X"
    mmc.pp.prepare(adata, reference=panel_model, caption_keys=False)
    mmc.tl.embed(adata, panel_model)  # prepared: the recorded obsm key, as before
    assert adata.uns["mmcontext"]["embed"]["use_rep"] == "X_mmc_init"
    np.testing.assert_array_equal(adata.obsm["X_mmc"], from_x)
    adata.layers["lognorm"] = adata.X.copy()
    adata.X = np.zeros_like(adata.X)
    mmc.tl.embed(adata, panel_model, layer="lognorm", key_added="from_layer")  # layer=: expression again
    assert adata.uns["mmcontext"]["embed"]["source"] == "adata.layers['lognorm']"
    np.testing.assert_array_equal(adata.obsm["from_layer"], from_x)
    # query / annotate embed through the same path: unprepared data works there too
    from mmcontext.tl._embed import joint_embedding

    np.testing.assert_array_equal(joint_embedding(make_adata(40, 30), panel_model), from_x)


def test_backed_r_plus_writes_obsm_and_saves(panel_model, tmp_path):
    adata = make_adata(45, 30)
    expected = _in_memory(adata, panel_model)
    backed = _backed(adata, tmp_path / "a.h5ad", mode="r+")
    mmc.tl.embed(backed, panel_model, chunk_size=20)
    np.testing.assert_allclose(backed.obsm["X_mmc"], expected, atol=1e-6, rtol=0)
    backed.write()
    backed.file.close()
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    np.testing.assert_array_equal(back.obsm["X_mmc"], np.asarray(expected))
    assert back.uns["mmcontext"]["embed"]["use_rep"] == "X" and back.uns["mmcontext"]["embed"]["chunk_size"] == 20


def test_out_file_on_in_memory_data_leaves_adata_unchanged(panel_model, tmp_path):
    adata = make_adata(30, 30)
    before = adata_digest(adata)
    assert mmc.tl.embed(adata, panel_model, out=str(tmp_path / "e.npy")) is None
    assert adata_digest(adata) == before
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), _in_memory(adata, panel_model), atol=1e-6, rtol=0)
    mmc.tl.embed(adata[:10], panel_model, out=tmp_path / "view.npy")  # a view is fine: nothing is written into it
    assert np.load(tmp_path / "view.npy").shape[0] == 10


def _no_genes(a):
    a.var_names = [f"ENSG{i}" for i in range(a.n_vars)]
    return a


def _counts(a):
    a.X = np.random.default_rng(0).poisson(30, size=a.shape).astype(np.float32)
    return a


def _no_space_model():
    return mmc.models.MMContextEncoder.build(30, hidden_dim=8, n_layers=1, seed=0, device="cpu")


BAD = [
    ("backed read-only, no out=", "backed", {}, ValueError, "out='embedding.npy'"),
    ("backed with copy=True", "backed", {"copy": True}, ValueError, "to_memory"),
    ("out= and copy=True", "memory", {"copy": True, "out": "e.npy"}, ValueError, "either out="),
    ("out= not .npy", "memory", {"out": "e.txt"}, ValueError, "must end in '.npy'"),
    ("out= not a path", "memory", {"out": 3}, TypeError, "path to a .npy"),
    ("chunk_size=0", "memory", {"chunk_size": 0}, ValueError, "positive integer"),
    ("no model gene in var_names", "no_genes", {"out": "e.npy"}, ValueError, "None of the reference's 30 genes"),
    ("raw counts", "counts", {"out": "e.npy"}, ValueError, "raw counts"),
    ("missing layer", "memory", {"layer": "lognrom"}, KeyError, "not found"),
    ("layer with an obsm key", "memory", {"layer": "x", "use_rep": "X_pca"}, ValueError, "only with use_rep='X'"),
    ("fill='median'", "memory", {"fill": "median"}, ValueError, "not one of 'mean', 'zero'"),
    ("model without input space", "memory", {"use_rep": "X", "model": "no_space"}, ValueError, "no gene panel"),
]


@pytest.mark.parametrize(("setup", "kwargs", "error", "match"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_clear_and_writes_nothing(panel_model, tmp_path, setup, kwargs, error, match):
    adata = make_adata(30, 30)
    adata = {"no_genes": _no_genes, "counts": _counts}.get(setup, lambda a: a)(adata)
    kwargs = dict(kwargs)
    model = _no_space_model() if kwargs.pop("model", None) else panel_model
    if isinstance(kwargs.get("out"), str):
        kwargs["out"] = tmp_path / kwargs["out"]
    if setup == "backed":
        adata = _backed(adata, tmp_path / "b.h5ad")
        digest = _sha(tmp_path / "b.h5ad")
    else:
        digest = adata_digest(adata)
    with pytest.raises(error, match=match):
        mmc.tl.embed(adata, model, **kwargs)
    if setup == "backed":
        assert not adata.obsm.keys() and "mmcontext" not in adata.uns
        adata.file.close()
        assert _sha(tmp_path / "b.h5ad") == digest
    else:
        assert adata_digest(adata) == digest
    assert [p.name for p in tmp_path.iterdir()] == (["b.h5ad"] if setup == "backed" else [])


@pytest.mark.parametrize("backed", [False, True], ids=["in-memory", "backed"])
def test_nan_in_a_late_chunk_leaves_nothing_half_written(panel_model, tmp_path, backed):
    adata = make_adata(103, 30)
    adata.X[95, 7] = np.nan
    adata.X = sparse.csr_matrix(adata.X)
    out = tmp_path / "e.npy"
    np.save(out, np.ones((2, 2), np.float32))  # a previous result stays as it was
    target = _backed(adata, tmp_path / "n.h5ad") if backed else adata
    before = None if backed else adata_digest(adata)
    with pytest.raises(ValueError, match=r"adata.X has NaN or infinite values \(first in row 95\)"):
        mmc.tl.embed(target, panel_model, chunk_size=10, out=out)
    np.testing.assert_array_equal(np.load(out), np.ones((2, 2)))
    assert sorted(p.name for p in tmp_path.iterdir()) == (["e.npy", "n.h5ad"] if backed else ["e.npy"])
    if not backed:
        with pytest.raises(ValueError, match="row 95"):
            mmc.tl.embed(adata, panel_model, chunk_size=10)  # into obsm: nothing written either
        assert adata_digest(adata) == before
