"""Gene-grounded cell-type knowledge: canonical marker genes per Cell Ontology term, offline.

Two tables ship in ``mmcontext/ontology/data``:

- ``markers.csv`` -- canonical marker genes (human symbols) of a few hundred CL terms (immune, blood, epithelial,
  stromal, endothelial, neural, germ-line, endocrine), written from textbook knowledge and the public marker
  collections (PanglaoDB, CellMarker, the Human Cell Atlas and KPMP references); columns ``cl_id``, ``cl_label``,
  ``genes`` (space separated) and ``source``.
- ``cd_antigens.csv`` -- CD antigen -> gene symbol(s) (CD56 -> NCAM1, CD16 -> FCGR3A/FCGR3B, CD25 -> IL2RA, ...),
  so the surface markers Cell Ontology names spell out ("CD16-positive, CD56-dim natural killer cell") reach genes.

A term without curated markers borrows those of its nearest ancestor that has them (the ontology's ``is_a`` /
``part_of`` closure, nearest first); positive markers in its name ("CD14-positive", "CD56-bright", "Kit+") are added
on top. Nothing here reads expression: :mod:`mmcontext.tl` scores the genes on cells.
"""

from __future__ import annotations

import csv
import functools
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = ["MarkerSet", "MarkerTable", "cd_genes", "name_marker_genes"]

#: Smallest Cell Ontology match confidence at which a free-text name borrows a term's markers.
MATCH_MIN_SCORE = 0.9

_CL_ID = re.compile(r"^\s*CL[:_](\d{7})\s*$", re.IGNORECASE)
# positive surface markers as CL names and annotations write them: "CD16-positive", "CD56-bright", "CD14+",
# "CD4 positive", "CD16hi"; "-negative", "-low" and "-dim" are not evidence of expression and are skipped
_POSITIVE = re.compile(
    r"\b([A-Za-z][A-Za-z0-9]*\d[A-Za-z0-9]*|[A-Za-z]{2,6}\d*)"
    r"(?:-(?:positive|high|bright|hi)\b|\s+positive\b|(?:hi|high|bright)\b|\+)"
)


@dataclass(frozen=True)
class MarkerSet:
    """The marker genes a name stands for, and where they came from.

    Its fields:

    - ``text``: the name or query looked up;
    - ``term_id``, ``term_name``: the Cell Ontology term it matched (``None`` for a user entry keyed by free text,
      or no match);
    - ``source_id``, ``source_name``: the term whose curated markers were used (``term_id`` itself, or the nearest
      ancestor with markers);
    - ``genes``: marker genes (human symbols), the curated (or inherited) ones, then those named in the text or
      term name;
    - ``name_genes``: the genes read from surface markers in the text or the term name ("CD56-positive" -> NCAM1);
    - ``source``: where the curated markers come from (the table's ``source`` column, or ``"user"``).
    """

    text: str
    term_id: str | None
    term_name: str | None
    source_id: str | None
    source_name: str | None
    genes: tuple[str, ...]
    name_genes: tuple[str, ...]
    source: str

    @property
    def inherited(self) -> bool:
        """Whether the curated markers were borrowed from an ancestor term."""
        return self.source_id is not None and self.source_id != self.term_id


def _read_csv(name: str) -> list[dict[str, str]]:
    with resources.files(__package__).joinpath("data", name).open("r", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@functools.lru_cache(maxsize=1)
def _cd_table() -> dict[str, tuple[str, ...]]:
    return {row["cd"].lower(): tuple(row["genes"].split()) for row in _read_csv("cd_antigens.csv")}


def cd_genes(antigen: str) -> tuple[str, ...]:
    """Gene symbols of a CD antigen (``"CD56"`` -> ``("NCAM1",)``); empty when it is not a known CD antigen.

    Examples
    --------
    >>> cd_genes("CD16")
    ('FCGR3A', 'FCGR3B')

    """
    return _cd_table().get(antigen.strip().lower().replace(" ", ""), ())


def name_marker_genes(text: str) -> tuple[str, ...]:
    """Genes of the positive surface markers a cell type name spells out.

    CD antigens map through the CD table (``"CD25-positive"`` -> IL2RA); other markers are taken as gene
    symbols (``"Kit-positive"`` -> KIT, ``"FOXP3+"`` -> FOXP3). Negative, low and dim markers are left out.

    Examples
    --------
    >>> name_marker_genes("CD16-positive, CD56-dim natural killer cell, human")
    ('FCGR3A', 'FCGR3B')

    """
    out: list[str] = []
    for match in _POSITIVE.finditer(text):
        token = match.group(1)
        genes = cd_genes(token) if token.lower().startswith("cd") else (token.upper(),)
        out.extend(g for g in genes if g not in out)
    return tuple(out)


def _gene_list(value: Any, *, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        genes = value.replace(",", " ").replace(";", " ").split()
    elif isinstance(value, Sequence):
        genes = [str(g).strip() for g in value]
    else:
        raise TypeError(f"{what}: expected a list of gene symbols, got {type(value).__name__}.")
    genes = [g for g in genes if g]
    if not genes:
        raise ValueError(f"{what}: the gene list is empty.")
    return tuple(dict.fromkeys(genes))


def _read_user_csv(path: str | os.PathLike) -> dict[str, tuple[str, ...]]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"markers={str(path)!r}: no such CSV file; pass a dict or an existing path.")
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return {}
    cols = set(rows[0])
    key_col = next((c for c in ("cl_id", "cell_type", "term", "label", "cl_label") if c in cols), None)
    if key_col is None or "genes" not in cols:
        raise ValueError(
            f"markers={str(path)!r} needs a 'genes' column and one of 'cl_id', 'cell_type', 'term', 'label' "
            f"(found {sorted(cols)!r})."
        )
    return {row[key_col]: _gene_list(row["genes"], what=f"{path}: {row[key_col]!r}") for row in rows}


class MarkerTable:
    """Marker genes per Cell Ontology term, inherited down the ontology and extendable by the user.

    Build it with :meth:`MarkerTable.load`.

    Parameters
    ----------
    curated
        ``{CL id: (genes, source)}``.
    free_text
        ``{lower-cased name: genes}`` for user entries that match no CL term.
    ontology
        The :class:`~mmcontext.ontology.CellOntology` used for ids, ancestors and name matching.

    Examples
    --------
    >>> table = MarkerTable.load()
    >>> ms = table.lookup("natural killer cells")
    >>> ms.term_name, "GNLY" in ms.genes
    ('natural killer cell', True)

    """

    def __init__(
        self, curated: dict[str, tuple[tuple[str, ...], str]], free_text: dict[str, tuple[str, ...]], ontology
    ):
        self.curated = curated
        self.free_text = free_text
        self.ontology = ontology

    def __len__(self) -> int:
        return len(self.curated)

    def __repr__(self) -> str:
        return f"MarkerTable(n_terms={len(self.curated)}, n_free_text={len(self.free_text)})"

    @classmethod
    def load(cls, markers: Mapping[str, Sequence[str] | str] | str | os.PathLike | None = None) -> MarkerTable:
        """The shipped table, extended (and, term by term, overridden) by ``markers``.

        Parameters
        ----------
        markers
            ``{cell type name or CL id: [genes]}``, or the path of a CSV with a ``genes`` column (space, comma or
            semicolon separated) and a ``cl_id`` / ``cell_type`` / ``term`` / ``label`` column. Names are matched to
            CL terms (confidence >= :data:`MATCH_MIN_SCORE`), so descendants inherit them; names that match no
            term are used for that exact text only.

        Returns
        -------
        A :class:`MarkerTable`.

        """
        from ._graph import CellOntology

        onto = CellOntology.load()
        curated = dict(_builtin())
        free_text: dict[str, tuple[str, ...]] = {}
        if markers is not None:
            if isinstance(markers, (str, os.PathLike)):
                user = _read_user_csv(markers)
            elif isinstance(markers, Mapping):
                user = {str(k): _gene_list(v, what=f"markers[{k!r}]") for k, v in markers.items()}
            else:
                raise TypeError(
                    "markers= must be a dict {cell type or CL id: [genes]} or a CSV path, "
                    f"got {type(markers).__name__}."
                )
            for key, genes in user.items():
                if _CL_ID.match(key):
                    curated[onto.term(key).id] = (genes, "user")
                    continue
                term = onto.match(key, min_score=MATCH_MIN_SCORE)
                if term is not None:
                    curated[term.id] = (genes, "user")
                else:
                    free_text[key.strip().lower()] = genes
        return cls(curated, free_text, onto)

    def term_markers(self, term_id: str) -> tuple[str | None, tuple[str, ...], str]:
        """``(source id, genes, source)`` for a CL id: its own curated markers, else its nearest ancestor's."""
        key = self.ontology.term(term_id).id
        for candidate in [key, *self.ontology.ancestors(key)]:
            if candidate in self.curated:
                genes, source = self.curated[candidate]
                return candidate, genes, source
        return None, (), ""

    def lookup(self, text: str) -> MarkerSet | None:
        """The marker genes a cell type name (or CL id) stands for, or ``None`` when none are known.

        Parameters
        ----------
        text
            A cell type name, a query such as ``"natural killer cells"``, or a CL id.

        Returns
        -------
        A :class:`MarkerSet` (term matched, term whose markers were used, genes), or ``None``.

        """
        key = text.strip().lower()
        if key in self.free_text:
            genes = self.free_text[key]
            return MarkerSet(text, None, None, None, None, genes, (), "user")
        term = self.ontology.match(text, min_score=MATCH_MIN_SCORE)
        if term is None:
            named = name_marker_genes(text)
            return MarkerSet(text, None, None, None, None, named, named, "name") if named else None
        source_id, genes, source = self.term_markers(term.id)
        named = tuple(dict.fromkeys(name_marker_genes(text) + name_marker_genes(term.name)))
        all_genes = tuple(dict.fromkeys(genes + named))
        if not all_genes:
            return None
        source_name = self.ontology.term(source_id).name if source_id is not None else None
        return MarkerSet(text, term.id, term.name, source_id, source_name, all_genes, named, source or "name")


@functools.lru_cache(maxsize=1)
def _builtin() -> dict[str, tuple[tuple[str, ...], str]]:
    return {row["cl_id"]: (tuple(row["genes"].split()), row["source"]) for row in _read_csv("markers.csv")}
