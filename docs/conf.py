"""Sphinx configuration: API reference from docstrings, tutorials executed by myst-nb.

The build must pass with ``-W`` on a machine without internet (mmcontext is offline-first, and so is CI):

- intersphinx: each inventory is probed (a HEAD request, 3 s) when the build starts, and only the reachable ones
  are mapped. Online (Read the Docs, a laptop) every link to anndata / scanpy / Python / sentence-transformers
  resolves; offline those names render as plain text instead of failing the build with "failed to reach any of
  the inventories". ``MMCONTEXT_DOCS_INTERSPHINX=off`` skips the probe, ``=on`` maps all without probing.
- docstrings are never inherited (``autodoc_inherit_docstrings = False``): mmcontext's classes subclass torch and
  sentence-transformers classes whose docstrings are not valid numpydoc reST, and a method without its own docstring
  should show nothing rather than torch's. The class template (``_templates/autosummary/class.rst``) lists only the
  methods a class defines itself, not the ~50 of ``torch.nn.Module``.
- tutorials (``tutorials/*.md``, myst notebooks) run at build time (``nb_execution_mode``, overridable with
  ``MMCONTEXT_DOCS_EXECUTE=off`` while writing prose); a failing cell fails the build.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "_ext"))

import mmcontext  # noqa: E402

project = "mmcontext"
author = "mmcontext developers"
copyright = "mmcontext developers"
release = version = mmcontext.__version__
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx_autodoc_typehints",
    "cli_reference",  # docs/_ext: the CLI reference from mmcontext.cli's argument parser
    "pipeline_figure",  # docs/_ext: draws the concepts page's diagram with matplotlib
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "jupyter_execute", "**/.ipynb_checkpoints"]

# API reference
autosummary_generate = True
autodoc_inherit_docstrings = False
autodoc_member_order = "bysource"
autoclass_content = "class"
autodoc_typehints = "description"
typehints_document_rtype = False  # numpydoc "Returns" sections say what is returned
always_use_bars_union = True
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_param = True

# tutorials
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = {"off": "off"}.get(os.environ.get("MMCONTEXT_DOCS_EXECUTE", ""), "cache")
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

# intersphinx, only for the inventories this machine can reach (see the module docstring)
_INVENTORIES = {
    "anndata": "https://anndata.readthedocs.io/en/stable/",
    "scanpy": "https://scanpy.readthedocs.io/en/stable/",
    "sentence_transformers": "https://sbert.net/",
    "python": "https://docs.python.org/3/",
}


def _reachable(url: str) -> bool:
    request = urllib.request.Request(url + "objects.inv", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return response.status == 200
    except OSError:
        return False


def _intersphinx_mapping(mode: str) -> dict[str, tuple[str, None]]:
    if mode == "off":
        return {}
    names = list(_INVENTORIES)
    if mode == "on":
        reachable = [True] * len(names)
    else:
        with ThreadPoolExecutor(len(names)) as pool:
            reachable = list(pool.map(_reachable, _INVENTORIES.values()))
    return {name: (_INVENTORIES[name], None) for name, ok in zip(names, reachable, strict=True) if ok}


intersphinx_mapping = _intersphinx_mapping(os.environ.get("MMCONTEXT_DOCS_INTERSPHINX", "probe"))
intersphinx_timeout = 10

# the scverse look: sphinx-book-theme, as scanpy and the cookiecutter-scverse template use
html_theme = "sphinx_book_theme"
html_title = "mmcontext"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "use_download_button": True,
}
