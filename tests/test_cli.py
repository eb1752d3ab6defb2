from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
from conftest import make_adata

from mmcontext.cli import main


def test_cli_train_embed_query(tmp_path, capsys):
    make_adata(n_obs=60).write_h5ad(tmp_path / "in.h5ad")
    assert (
        main(
            [
                "-q",
                "train",
                str(tmp_path / "in.h5ad"),
                "--model-out",
                str(tmp_path / "model"),
                "--epochs",
                "1",
                "--batch-size",
                "16",
            ]
        )
        == 0
    )
    assert (tmp_path / "model" / "modules.json").is_file()
    assert (tmp_path / "model" / "training_history.json").is_file()
    # embed/query need the initial embedding: prepare once with the same defaults
    import mmcontext as mmc

    adata = make_adata(n_obs=60)
    mmc.pp.prepare(adata)
    adata.write_h5ad(tmp_path / "prepared.h5ad")
    assert (
        main(
            [
                "-q",
                "embed",
                str(tmp_path / "prepared.h5ad"),
                "--model",
                str(tmp_path / "model"),
                "--out",
                str(tmp_path / "emb.h5ad"),
            ]
        )
        == 0
    )
    emb = ad.read_h5ad(tmp_path / "emb.h5ad")
    assert emb.obsm["X_mmc"].shape == (60, 384)
    assert (
        main(
            [
                "-q",
                "query",
                str(tmp_path / "emb.h5ad"),
                "--model",
                str(tmp_path / "model"),
                "--text",
                "B cells",
                "--text",
                "T cells",
                "--out",
                str(tmp_path / "q.h5ad"),
            ]
        )
        == 0
    )
    q = ad.read_h5ad(tmp_path / "q.h5ad")
    assert {"mmc_b_cells", "mmc_t_cells"} <= set(q.obs.columns)
    assert np.isfinite(q.obs["mmc_b_cells"]).all()
    assert "wrote" in capsys.readouterr().out


def test_cli_missing_input_is_a_clear_error(tmp_path, capsys):
    rc = main(["-q", "embed", str(tmp_path / "nope.h5ad"), "--model", "x", "--out", str(tmp_path / "o.h5ad")])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.count("\n") == 1 and "does not exist" in err and str(tmp_path / "nope.h5ad") in err
    assert "Traceback" not in err


def test_cli_mistyped_model_folder_is_one_line_naming_the_nearest_folder(tmp_path, monkeypatch, capsys):
    import mmcontext as mmc

    adata = make_adata(n_obs=30)
    mmc.pp.prepare(adata)
    adata.write_h5ad(tmp_path / "in.h5ad")
    (tmp_path / "my_model").mkdir()
    monkeypatch.chdir(tmp_path)
    rc = main(["-q", "embed", "in.h5ad", "--model", "my_modle", "--out", "o.h5ad"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("mmcontext embed: error: No model folder at 'my_modle'")
    assert str(tmp_path / "my_model") in err and "ModelNotFoundError" in err
    with pytest.raises(FileNotFoundError):  # --traceback shows the exception itself
        main(["-q", "--traceback", "embed", "in.h5ad", "--model", "my_modle", "--out", "o.h5ad"])


def test_cli_error_names_cli_flags_for_python_options(tmp_path, capsys):
    import mmcontext as mmc

    adata = make_adata(n_obs=30)
    adata.write_h5ad(tmp_path / "raw.h5ad")  # not prepared: the model's input space is missing
    model = mmc.models.MMContextEncoder.build(7)
    mmc.models.save_model(model, tmp_path / "m")
    rc = main(["-q", "embed", str(tmp_path / "raw.h5ad"), "--model", str(tmp_path / "m"), "--out", "o.h5ad"])
    err = capsys.readouterr().err
    assert rc == 1 and "X_mmc_init" in err and "`--use-rep`" in err and "use_rep=" not in err


def test_cli_version(capsys):
    import mmcontext as mmc

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"mmcontext {mmc.__version__}"


def test_cli_help_has_no_rest_markup():
    from mmcontext.cli import build_parser

    parser = build_parser()
    for text in [parser.format_help()] + [p.format_help() for p in parser.subcommands.values()]:
        assert "``" not in text and ":func:" not in text and ":class:" not in text, text


def test_every_option_a_message_points_to_is_a_cli_flag():
    """Messages on the train / embed / query path name Python options; the command line has each of them."""
    import re
    from pathlib import Path

    import mmcontext
    from mmcontext.cli import _ALIASES, build_parser

    src = Path(mmcontext.__file__).parent
    files = ["pp/_prepare.py", "pp/_captions.py", "tl/_embed.py", "tl/_embed_plan.py", "tl/_query.py", "tl/_train.py"]
    files += [f"_validation/{name}" for name in ("_args.py", "_anndata.py", "_values.py", "_objects.py")]
    named = set()
    for f in files:
        text = (src / f).read_text()
        for call in re.findall(r"(?:raise \w+\(|logger\.warning\()(.*?)\)\n", text, flags=re.S):
            named |= set(re.findall(r"`([a-z_]+)=", call))
    # options of Python objects the command line never hands over (AnnData views, backed files, datasets, models)
    python_only = {"copy", "backed", "out", "dataset", "task", "text_adapter", "reference", "shape", "save_steps"}
    parser = build_parser()
    flags = {a.dest for p in parser.subcommands.values() for a in p._actions if a.option_strings}
    missing = {n for n in named - python_only if _ALIASES.get(n, n) not in flags}
    assert {"layer", "use_rep", "caption_key", "caption_keys"} <= named
    assert not missing, f"messages point to options the command line lacks: {sorted(missing)}"


def test_cli_train_layer(tmp_path):
    import mmcontext as mmc

    adata = make_adata(n_obs=60)
    adata.layers["lognorm"] = np.log1p(np.abs(adata.X))
    adata.X = adata.X - adata.X.mean(axis=0)  # scaled X: the layer holds what the gene panel expects
    adata.write_h5ad(tmp_path / "in.h5ad")
    args = ["-q", "train", str(tmp_path / "in.h5ad"), "--model-out", str(tmp_path / "m"), "--epochs", "1"]
    assert main([*args, "--layer", "lognorm", "--batch-size", "16", "--caption-keys", "cell_type=cell_type"]) == 0
    model = mmc.models.load(tmp_path / "m")
    assert model.omics_encoder.input_space["layer"] == "lognorm"


def test_quickstart_marks_held_out_cells_and_names_every_file(tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["-q", "quickstart", "--out", str(out), "--epochs", "1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"wrote to {out}/: ")
    for name in ("pbmc68k_mmc.h5ad", "model/", "heldout_metrics.csv", "query_umap.png", "joint_umap.png"):
        assert name in last and (out / name.rstrip("/")).exists(), name
    adata = ad.read_h5ad(out / "pbmc68k_mmc.h5ad")
    assert adata.obs["mmc_split"].value_counts().to_dict() == {"train": 504, "validation": 56, "unseen": 140}
    assert adata.uns["mmcontext"]["train"]["n_unseen"] == 140


def _bad_inputs(tmp_path):
    adata = make_adata(n_obs=30)
    adata.write_h5ad(tmp_path / "in.h5ad")
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    (tmp_path / "empty_model").mkdir()
    out = str(tmp_path / "o.h5ad")
    return {
        "not an h5ad file": ["train", str(tmp_path / "table.csv"), "--model-out", str(tmp_path / "m")],
        "zero epochs": ["train", str(tmp_path / "in.h5ad"), "--model-out", str(tmp_path / "m"), "--epochs", "0"],
        "negative epochs": ["train", str(tmp_path / "in.h5ad"), "--model-out", str(tmp_path / "m"), "--epochs", "-2"],
        "missing caption column": [
            "train",
            str(tmp_path / "in.h5ad"),
            "--model-out",
            str(tmp_path / "m"),
            "--caption-keys",
            "cell_type=nope",
        ],
        "missing model folder": ["embed", str(tmp_path / "in.h5ad"), "--model", str(tmp_path / "nope"), "--out", out],
        "empty model folder": [
            "embed",
            str(tmp_path / "in.h5ad"),
            "--model",
            str(tmp_path / "empty_model"),
            "--out",
            out,
        ],
        "query on a missing model": [
            "query",
            str(tmp_path / "in.h5ad"),
            "--model",
            str(tmp_path / "nope"),
            "--text",
            "B cells",
            "--out",
            out,
        ],
    }


@pytest.mark.parametrize(
    "case",
    [
        "not an h5ad file",
        "zero epochs",
        "negative epochs",
        "missing caption column",
        "missing model folder",
        "empty model folder",
        "query on a missing model",
    ],
)
def test_cli_user_errors_are_one_line_without_traceback(tmp_path, capsys, case):
    args = _bad_inputs(tmp_path)[case]
    try:
        rc = main(["-q", *args])
    except SystemExit as exit_:  # argparse's own usage errors: exit 2 with a usage line
        rc = exit_.code
    err = capsys.readouterr().err.strip()
    assert rc not in (0, None)
    assert "Traceback" not in err
    if rc == 1:  # an input error: one line naming the command and the problem
        assert len(err.splitlines()) == 1 and err.startswith(f"mmcontext {args[0]}: error: ")
    else:  # argparse rejected the value itself: its usage line and one error line, exit 2
        assert rc == 2 and err.splitlines()[-1].startswith("mmcontext")
    assert not (tmp_path / "o.h5ad").exists() and not (tmp_path / "m").exists()  # nothing half-written
