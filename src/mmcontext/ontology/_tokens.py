"""Normalising cell type names into match tokens: case, plurals, marker notation, abbreviations.

Applied to data labels and to Cell Ontology names / synonyms alike, so both sides of a match are read the same way.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

#: A CL id inside free text: ``"CL:0000623"`` or ``"CL_0000623"``.
_ID_RE = re.compile(r"\bCL[:_](\d{7})\b", re.IGNORECASE)

# Token-level abbreviations found in real cell type annotations. Applied to labels and to
# CL names/synonyms alike, so both sides are normalised the same way.
_ABBREVIATIONS: dict[str, str] = {
    "nk": "natural killer",
    "nkt": "natural killer t",
    "treg": "regulatory t",
    "reg": "regulatory",
    "dc": "dendritic",
    "pdc": "plasmacytoid dendritic",
    "cdc": "conventional dendritic",
    "mdc": "myeloid dendritic",
    "cdc1": "conventional dendritic 1",
    "cdc2": "conventional dendritic 2",
    "hsc": "hematopoietic stem",
    "hspc": "hematopoietic stem progenitor",
    "mpp": "multipotent progenitor",
    "cmp": "common myeloid progenitor",
    "gmp": "granulocyte monocyte progenitor",
    "mep": "megakaryocyte erythroid progenitor",
    "clp": "common lymphoid progenitor",
    "mono": "monocyte",
    "mk": "megakaryocyte",
    "mega": "megakaryocyte",
    "rbc": "erythrocyte",
    "ery": "erythroid",
    "eryth": "erythroid",
    "dn": "double negative",
    "dnt": "double negative t",
    "at1": "alveolar 1",
    "at2": "alveolar 2",
    "plt": "platelet",
    "mac": "macrophage",
    "macro": "macrophage",
    "neu": "neutrophil",
    "neut": "neutrophil",
    "eos": "eosinophil",
    "baso": "basophil",
    "ilc": "innate lymphoid",
    "mait": "mucosal invariant t",
    "tfh": "t follicular helper",
    "th": "t helper",
    "ctl": "cytotoxic t",
    "tcm": "central memory t",
    "tem": "effector memory t",
    "gdt": "gamma delta t",
    "mdsc": "myeloid derived suppressor",
    "lympho": "lymphocyte",
    "fibro": "fibroblast",
    "epi": "epithelial",
    "endo": "endothelial",
    "smc": "smooth muscle",
    "opc": "oligodendrocyte precursor",
    "oligo": "oligodendrocyte",
    "astro": "astrocyte",
    "mem": "memory",
    "haematopoietic": "hematopoietic",
    "hemopoietic": "hematopoietic",
    "haemopoietic": "hematopoietic",
    "leucocyte": "leukocyte",
    "leukocytic": "leukocyte",
    "naïve": "naive",
    "associated": "",
    "i": "1",
    "ii": "2",
    "iii": "3",
    "iv": "4",
}

# Qualifiers that CL names spell out but annotations usually leave implicit ("alpha-beta",
# "thymus-derived", ", human"); like markers, they count half when only one side has them.
_QUALIFIERS: frozenset[str] = frozenset({"alpha", "beta", "thymus", "derived", "mature", "human", "mouse"})

_STOPWORDS: frozenset[str] = frozenset({"cell", "a", "an", "the", "of", "and", "or", "in", "type", "like", "with"})

_GREEK = {"α": " alpha ", "β": " beta ", "γ": " gamma ", "δ": " delta ", "κ": " kappa ", "λ": " lambda "}

# "CD14-positive", "Kit-low", "CD56-bright" (CL style) and "CD4 positive" (spaced, needs a digit)
_MARKER_WORD_RE = re.compile(
    r"\b([a-z0-9]+(?:-(?:alpha|beta|gamma|delta))?)-(positive|negative|high|low|bright|dim|hi|lo)\b"
)
_MARKER_SPACED_RE = re.compile(r"\b([a-z]+\d+[a-z0-9]*)\s+(positive|negative|pos|neg)\b")
# "CD56bright", "CD16hi", "CD14lo"
_MARKER_GLUED_RE = re.compile(r"\b(cd\d+[a-z]?)(high|hi|bright|low|lo|dim)\b")
# "CD14+", "CD8+CD25+", "CD25-" (minus only at a token end, so "alpha-beta" is untouched)
_MARKER_PLUS_RE = re.compile(r"([a-z0-9]+)\+{1,2}")
_MARKER_MINUS_RE = re.compile(r"([a-z0-9]+)-(?=$|[\s/,;:)\]]|[a-z0-9]+[+-])")
_POLARITY = {
    "positive": "pos",
    "pos": "pos",
    "negative": "neg",
    "neg": "neg",
    "high": "hi",
    "hi": "hi",
    "bright": "hi",
    "low": "lo",
    "lo": "lo",
    "dim": "lo",
}
_TH_RE = re.compile(r"^th(\d+)$")
_CD_RE = re.compile(r"^cd\d+[a-z]*$")


def _marker(name: str, polarity: str) -> str:
    name = name.replace("-", "")
    pol = _POLARITY[polarity]
    if pol == "hi":
        return f" {name} {name}_pos {name}_hi "
    return f" {name} {name}_{pol} "


def _singular(token: str) -> str:
    if token in _ABBREVIATIONS or "_" in token or len(token) < 3 or not token.endswith("s"):
        return token
    if token[:-1] in _ABBREVIATIONS:
        return token[:-1]
    if len(token) <= 4 or token.endswith(("ss", "us", "is", "ous")):
        return token
    if token.endswith("ies"):
        return token[:-3] + "y"
    return token[:-1]


@functools.lru_cache(maxsize=65536)
def _tokenize(text: str) -> tuple[str, ...]:
    """Normalise a cell type name into match tokens (order kept, duplicates removed)."""
    text = "".join(_GREEK.get(ch, ch) for ch in text)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower().replace("_", " ")
    text = _MARKER_WORD_RE.sub(lambda m: _marker(m.group(1), m.group(2)), text)
    text = _MARKER_SPACED_RE.sub(lambda m: _marker(m.group(1), m.group(2)), text)
    text = _MARKER_GLUED_RE.sub(lambda m: _marker(m.group(1), m.group(2)), text)
    text = _MARKER_PLUS_RE.sub(lambda m: _marker(m.group(1), "positive"), text)
    text = _MARKER_MINUS_RE.sub(lambda m: _marker(m.group(1), "negative"), text)
    tokens: list[str] = []
    for raw in re.split(r"[^a-z0-9_]+", text):
        if not raw:
            continue
        tok = _singular(raw)
        th = _TH_RE.match(tok)
        expansion = f"t helper {th.group(1)}" if th else _ABBREVIATIONS.get(tok, tok)
        for part in expansion.split():
            if part not in _STOPWORDS and part not in tokens:
                tokens.append(part)
    # a bare CD marker ("CD4 T cells", "CD14 Mono") means the marker is expressed
    for tok in list(tokens):
        if _CD_RE.match(tok) and not any(f"{tok}_{p}" in tokens for p in ("pos", "neg", "lo", "hi")):
            tokens.insert(tokens.index(tok) + 1, f"{tok}_pos")
    return tuple(tokens)


def _is_marker(token: str, tokens: Iterable[str]) -> bool:
    """Whether a token is a marker or a qualifier that labels usually leave implicit."""
    return (
        token in _QUALIFIERS
        or "_" in token
        or f"{token}_pos" in tokens
        or f"{token}_neg" in tokens
        or f"{token}_lo" in tokens
    )
