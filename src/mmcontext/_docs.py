"""Docstring fragments shared by the public functions, and :func:`doc_params`, which fills them in.

A docstring names a fragment by a line holding only ``{name}``, indented like the lines it stands for: under a
parameter's name (which stays in the docstring, so linters and readers of the source see every parameter) for
its description, or in the Returns section. :func:`doc_params` replaces the line by the fragment, indented the
same way, so the rendered docstring is plain numpydoc (``help()``, Sphinx and ``tests/test_docs.py`` read the
result). Other braces in a docstring are left alone: only whole lines ``{name}`` of the names given are replaced.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

# -- parameter descriptions -----------------------------------------------------------------------
doc_adata_query = """\
Annotated data matrix, prepared (and optionally embedded with :func:`mmcontext.tl.embed`)."""

doc_model = """\
A trained :class:`~mmcontext.models.MMContextEncoder`."""

doc_use_rep_embed = """\
``obsm`` key of the initial embedding to embed cells from (default: reuse ``obsm['X_mmc']``)."""

doc_use_rep_prepared = """\
``obsm`` key of the initial embedding; default: the one :func:`~mmcontext.pp.prepare` recorded."""

doc_overwrite = """\
Replace existing ``obs`` / ``obsm`` entries of the output names that mmcontext did not write (or wrote as
another kind of result), e.g. a label column of the data. Default: refuse, naming the entry."""

doc_copy = """\
Return a copy instead of writing into ``adata``."""

doc_key_added_record = """\
Name of the record in ``adata.uns['mmcontext']``."""

doc_pl_common = """\
As in :func:`mmcontext.pl.query`."""

doc_pl_embedding_kwargs = """\
Passed to :func:`scanpy.pl.embedding`."""

# -- returns --------------------------------------------------------------------------------------
doc_returns_copy = """\
``None``, or a copy of ``adata`` when ``copy=True``, with"""

#: Every fragment by the name a docstring uses for it.
FRAGMENTS: dict[str, str] = {
    name.removeprefix("doc_"): value for name, value in dict(globals()).items() if name.startswith("doc_")
}


def doc_params(*names: str) -> Callable[[F], F]:
    """Decorator: fill the ``{name}`` lines of the decorated object's docstring with the fragments ``names``.

    Raises ``KeyError`` for a name without a fragment and ``ValueError`` for a name the docstring does not use,
    when the module is imported, so a stale placeholder cannot reach the docs.
    """
    unknown = [n for n in names if n not in FRAGMENTS]
    if unknown:
        raise KeyError(f"No docstring fragment {unknown}; known: {sorted(FRAGMENTS)}.")

    def decorate(obj: F) -> F:
        doc = obj.__doc__ or ""
        for name in names:
            pattern = re.compile(rf"^(?P<indent>[ ]*)\{{{name}\}}[ ]*$", re.M)
            if not pattern.search(doc):
                raise ValueError(f"{obj.__qualname__}'s docstring has no line {{{name}}}.")
            doc = pattern.sub(lambda m, n=name: textwrap.indent(FRAGMENTS[n], m["indent"]), doc)
        obj.__doc__ = doc
        return obj

    return decorate
