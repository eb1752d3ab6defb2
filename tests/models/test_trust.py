"""Loading a model never runs code the model folder ships, unless the user trusts it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import mmcontext as mmc
from mmcontext._compat import resolve_module_classes
from mmcontext.models import MMContextEncoder
from mmcontext.models._encoder import UntrustedModelError, own_module_classes

SRC = str(Path(mmc.__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("trust") / "model"
    model = MMContextEncoder.build(6, hidden_dim=16, seed=0)
    model.save_pretrained(str(path))
    return path


def _plant(folder: Path, marker: Path, *, where: str) -> None:
    """Add a module of type evil_mod.Evil whose import writes ``marker``; ``where``: top level or inside the Router."""
    (folder / "evil_mod.py").write_text(
        textwrap.dedent(f"""
        import pathlib
        pathlib.Path({str(marker)!r}).write_text("ran")
        from sentence_transformers.sentence_transformer.modules import Normalize
        class Evil(Normalize):
            pass
    """)
    )
    if where == "top":
        modules = json.loads((folder / "modules.json").read_text())
        modules.append({"idx": len(modules), "name": "evil", "path": "", "type": "evil_mod.Evil"})
        (folder / "modules.json").write_text(json.dumps(modules))
    else:
        cfg_path = folder / "router_config.json"
        cfg = json.loads(cfg_path.read_text())
        types = cfg["types"]
        key = next(k for k, v in types.items() if v.endswith("OmicsEncoder"))
        types[key] = "evil_mod.Evil"
        cfg_path.write_text(json.dumps(cfg))


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_own_model_loads_without_trusting_code(saved):
    model = mmc.models.load(saved)
    assert model.input_dim == 6
    assert not any(m.training for m in model.modules())  # loaded ready to embed: no dropout in a direct forward
    direct = MMContextEncoder(str(saved))
    X = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    np.testing.assert_array_equal(model.encode_cells(X), direct.encode_cells(X))


def test_saved_model_resolves_only_mmcontext_types(saved):
    types = {m["type"] for m in json.loads((saved / "modules.json").read_text())}
    types |= set(json.loads((saved / "router_config.json").read_text())["types"].values())
    foreign = {t for t in types if not t.startswith(("sentence_transformers.", "modeling_mmcontext."))}
    assert not foreign
    own = {t for t in types if t.startswith("modeling_mmcontext.")}  # named through the shipped loader file
    assert own == {"modeling_mmcontext.OmicsEncoder"} and own <= set(own_module_classes())


def _no_mmcontext_run(folder: Path, tmp_path: Path, *, block: bool) -> subprocess.CompletedProcess:
    """Plain ``SentenceTransformer(folder, trust_remote_code=True)`` in a fresh process, mmcontext importable or not."""
    code = textwrap.dedent(f"""
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):  # as if mmcontext were not installed
            def find_spec(self, name, path, target=None):
                if name == "mmcontext" or name.startswith("mmcontext."):
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        if {block!r}:
            sys.meta_path.insert(0, Block())
        from sentence_transformers import SentenceTransformer
        model = SentenceTransformer(sys.argv[1], trust_remote_code=True)
        print("loaded", type(model[0].sub_modules["omics"][0]).__module__)
    """)
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "HF_HUB_OFFLINE": "1",
           "HF_MODULES_CACHE": str(tmp_path / "hf_modules")}  # fmt: skip
    return subprocess.run([sys.executable, "-c", code, str(folder)], env=env, capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)  # fmt: skip


def test_loading_without_mmcontext_says_what_to_install(saved, tmp_path):
    run = _no_mmcontext_run(saved, tmp_path, block=True)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: This model was saved by mmcontext"), run.stderr[-2000:]
    assert "pip install mmcontext" in last and "No module named" not in last
    with_mmc = _no_mmcontext_run(saved, tmp_path, block=False)  # the same call with mmcontext installed loads
    assert with_mmc.returncode == 0, with_mmc.stderr[-2000:]
    assert "loaded mmcontext.models" in with_mmc.stdout


def test_mmcontext_never_runs_the_shipped_loader_file(saved, tmp_path):
    folder = _copy(saved, tmp_path / "model")
    marker = tmp_path / "ran.txt"
    (folder / "modeling_mmcontext.py").write_text(f"import pathlib; pathlib.Path({str(marker)!r}).write_text('ran')\n")
    model = mmc.models.load(folder)
    assert type(model.omics_encoder).__module__ == "mmcontext.models" and not marker.exists()
    MMContextEncoder(str(folder))
    assert not marker.exists()


@pytest.mark.parametrize("where", ["top", "router"])
@pytest.mark.parametrize("loader", ["load", "class"])
def test_shipped_code_is_refused_by_default(saved, tmp_path, where, loader):
    folder = _copy(saved, tmp_path / "model")
    marker = tmp_path / "ran.txt"
    _plant(folder, marker, where=where)
    with pytest.raises(UntrustedModelError, match=r"evil_mod\.Evil.*trust_remote_code=True"):
        mmc.models.load(folder) if loader == "load" else MMContextEncoder(str(folder))
    assert not marker.exists()
    assert isinstance(UntrustedModelError("x"), ValueError)


def test_shipped_code_runs_only_when_trusted(saved, tmp_path):
    folder = _copy(saved, tmp_path / "model")
    marker = tmp_path / "ran.txt"
    _plant(folder, marker, where="top")
    code = "import sys, mmcontext as mmc; mmc.models.load(sys.argv[1], trust_remote_code=True)"
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [sys.executable, "-c", code, str(folder)], check=True, env=env, capture_output=True, timeout=300, cwd=tmp_path
    )
    assert marker.read_text() == "ran"


def test_compat_module_classes_hook_exists():
    """sentence-transformers' private hook mmcontext relies on: a changed upgrade must fail here, not trust code."""
    from sentence_transformers.base.model import BaseModel

    assert BaseModel._module_classes == {}
    assert (
        "module_classes"
        in __import__("inspect")
        .signature(__import__("sentence_transformers").sentence_transformer.modules.Router.load)
        .parameters
    )

    class Dummy:
        pass

    d = Dummy()
    resolve_module_classes(d, {"a.B": int})
    assert d._module_classes == {"a.B": int}


@pytest.mark.parametrize(
    "type_name",
    ["mmcontext.evil_mod.Evil", "mmcontext.models._omics.Evil", "mmcontext_evil.Evil", "evil_mod.OmicsEncoder"],
)
def test_lookalike_mmcontext_types_are_refused(saved, tmp_path, type_name):
    """Only the exact classes of the allow-list resolve: a type that merely looks like mmcontext's is refused."""
    folder = _copy(saved, tmp_path / "model")
    marker = tmp_path / "ran.txt"
    module, _, cls = type_name.rpartition(".")
    source = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
    source += (
        f"from sentence_transformers.sentence_transformer.modules import Normalize\nclass {cls}(Normalize):\n    pass\n"
    )
    target = folder / (module.replace(".", "/") + ".py")
    target.parent.mkdir(parents=True, exist_ok=True)
    for parent in target.relative_to(folder).parents:  # make each folder a package, as an attacker would
        if str(parent) != ".":
            (folder / parent / "__init__.py").write_text("")
    target.write_text(source)
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": len(modules), "name": "evil", "path": "", "type": type_name})
    (folder / "modules.json").write_text(json.dumps(modules))
    cwd = os.getcwd()
    os.chdir(folder)  # even with the folder as the working directory (first on sys.path for `python -c`)
    try:
        with pytest.raises(UntrustedModelError, match="trust_remote_code=True"):
            mmc.models.load(folder)
    finally:
        os.chdir(cwd)
    assert not marker.exists()
