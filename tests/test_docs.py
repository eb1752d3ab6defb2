"""The docs cover the public API: every exported name is in docs/api.md, every pp/tl function documents what it
writes and shows an example, and the CLI reference lists every subcommand and option of the parser."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import mmcontext as mmc

DOCS = Path(__file__).parents[1] / "docs"
NAMESPACES = ["pp", "tl", "pl", "models", "datasets"]


#: Names added for atlas search, cross-species projection and marker grounding (issues #11, #12).
NEW_NAMES = ["tl.search", "tl.search_cells", "tl.build_index", "tl.load_index", "pp.ortholog_map", "pl.markers"]


def _autosummary_entries(text: str) -> set[str]:
    """The ``namespace.name`` entries of the page's ``autosummary`` directives (each renders a docstring page)."""
    entries: set[str] = set()
    for block in re.findall(r"```\{eval-rst\}\n(.*?)```", text, re.S):
        if ".. autosummary::" in block:
            entries |= set(re.findall(r"^ {3}(\w+\.\w+)\s*$", block, re.M))
    return entries


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_api_page_lists_every_public_name(namespace):
    """Every function and class has an autosummary entry (its docstring rendered); constants are named in prose."""
    text = (DOCS / "api.md").read_text()
    entries = _autosummary_entries(text)
    mentioned = set(re.findall(rf"\b{namespace}\.(\w+)", text))
    ns = getattr(mmc, namespace)
    missing = []
    for name in ns.__all__:
        documented = callable(getattr(ns, name))
        if (f"{namespace}.{name}" not in entries) if documented else (name not in mentioned):
            missing.append(name)
    assert not missing, f"docs/api.md does not list {namespace}: {missing}"


@pytest.mark.parametrize("name", NEW_NAMES)
def test_api_page_lists_search_orthologs_and_markers(name):
    namespace, attr = name.split(".")
    assert attr in getattr(mmc, namespace).__all__, f"{name} is not public"
    assert name in _autosummary_entries((DOCS / "api.md").read_text()), f"docs/api.md has no autosummary entry {name}"


@pytest.mark.parametrize(
    "func", [getattr(ns, n) for ns in (mmc.pp, mmc.tl) for n in ns.__all__], ids=lambda f: f.__qualname__
)
def test_pp_tl_docstrings_have_returns_and_examples(func):
    doc = func.__doc__ or ""
    assert re.search(r"^\s*Returns\n\s*-+$", doc, re.M), f"{func.__name__}: no numpydoc Returns section"
    assert re.search(r"^\s*Examples\n\s*-+$", doc, re.M), f"{func.__name__}: no numpydoc Examples section"
    assert ">>> " in doc, f"{func.__name__}: the Examples section has no example"


def test_cli_reference_covers_the_parser():
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        from cli_reference import cli_spec
    finally:
        sys.path.pop(0)
    from mmcontext.cli import build_parser

    parser = build_parser()
    commands = {c.name: c for c in cli_spec(parser)}
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert set(commands) == {"mmcontext"} | {f"mmcontext {name}" for name in subparsers.choices}
    for name, sub in subparsers.choices.items():
        shown = " ".join(a.names for a in commands[f"mmcontext {name}"].arguments)
        for action in sub._actions:
            if action.dest != "help":
                assert (action.option_strings or [action.dest])[0] in shown, (name, action.dest)
    quick = {a.names: a for a in commands["mmcontext quickstart"].arguments}
    assert quick["--seed"].default == "0" and quick["--out"].default == "mmcontext_quickstart"


def test_pipeline_figure_draws(tmp_path):
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        from pipeline_figure import draw
    finally:
        sys.path.pop(0)
    svg = draw(tmp_path / "pipeline.svg").read_text()
    assert "<svg" in svg and "joint space" in svg and "text route" in svg


def test_shared_docstring_fragments_are_filled_in():
    from mmcontext._docs import FRAGMENTS, doc_params

    placeholder = re.compile(r"^\s*\{(" + "|".join(FRAGMENTS) + r")\}\s*$", re.M)
    for ns in (mmc.pp, mmc.tl, mmc.pl):
        for name in ns.__all__:
            doc = getattr(ns, name).__doc__ or ""
            assert not placeholder.search(doc), f"{ns.__name__}.{name}: an unfilled docstring fragment"
    assert FRAGMENTS["overwrite"].splitlines()[1] in mmc.tl.query.__doc__  # continuation lines keep their indent
    assert "    copy\n        Return a copy instead of writing into ``adata``." in mmc.pp.prepare.__doc__

    def f():
        """Do it.

        Parameters
        ----------
        copy
            {copy}
        mapping
            A dict such as ``{name: value}`` stays as written.
        """

    doc = doc_params("copy")(f).__doc__
    assert "            Return a copy instead of writing into ``adata``." in doc and "``{name: value}``" in doc
    with pytest.raises(KeyError, match="No docstring fragment"):
        doc_params("nope")
    with pytest.raises(ValueError, match="has no line"):
        doc_params("overwrite")(f)
