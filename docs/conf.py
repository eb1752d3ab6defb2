"""Sphinx configuration: API reference from docstrings, tutorials executed by myst-nb."""

from __future__ import annotations

import mmcontext

project = "mmcontext"
author = "mmcontext developers"
release = mmcontext.__version__
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx_autodoc_typehints",
]
autosummary_generate = True
napoleon_google_docstring = False
napoleon_numpy_docstring = True
myst_enable_extensions = ["colon_fence", "dollarmath"]
nb_execution_mode = "cache"  # tutorials run at build time, so they cannot drift from the code
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_custom_formats = {}
exclude_patterns = ["_build"]
intersphinx_mapping = {
    "anndata": ("https://anndata.readthedocs.io/en/stable/", None),
    "scanpy": ("https://scanpy.readthedocs.io/en/stable/", None),
    "sentence_transformers": ("https://sbert.net/", None),
    "python": ("https://docs.python.org/3", None),
}
html_theme = "sphinx_book_theme"
html_title = "mmcontext"
