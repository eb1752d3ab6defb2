"""Offline Cell Ontology (CL) helper: look up terms and match free-text cell type names.

The ontology is read from the files shipped inside :mod:`cellxgene_ontology_guide`, so
nothing is downloaded. Matching is purely lexical (no torch, no sentence-transformers):
labels are normalised (case, plurals, marker notation such as ``CD14+``, common
abbreviations such as ``NK`` or ``Treg``) and scored against every CL name and synonym
with an IDF-weighted cosine over tokens.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import time
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

logger = logging.getLogger("mmcontext")

__all__ = ["CellOntology", "OntologyTerm"]

_ID_RE = re.compile(r"\bCL[:_](\d{7})\b", re.IGNORECASE)

#: Ancestors too generic to say anything useful about a cell type.
GENERIC_ANCESTORS: frozenset[str] = frozenset(
    {
        "cell",
        "native cell",
        "eukaryotic cell",
        "prokaryotic cell",
        "animal cell",
        "somatic cell",
        "nucleate cell",
        "single nucleate cell",
        "multinucleate cell",
        "binucleate cell",
        "mononuclear cell",
        "motile cell",
        "non-motile cell",
        "electrically active cell",
        "electrically responsive cell",
        "electrically signaling cell",
        "stuff accumulating cell",
        "contractile cell",
        "secretory cell",
        "cell in vitro",
        "experimentally modified cell in vivo",
        "non-terminally differentiated cell",
        "progenitor cell",
        "precursor cell",
        "polyploid cell",
        "endopolyploid cell",
        "obsolete non-terminally differentiated cell",
        "OBSOLETE defensive cell",
    }
)

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


# Markers / qualifiers that only the query names keep this weight; those only the CL name
# spells out ("alpha-beta", "CD16-positive, CD56-dim ..., human") count less.
_QUERY_MARKER_WEIGHT = 1.0
_TERM_MARKER_WEIGHT = 0.5
_REFINE_MARGIN = 0.2  # how much lower a more specific term may score and still win (see _rank)
_DEFINITION_WEIGHT = 0.3  # a marker confirmed by the definition, not the name, counts a bit less
_CD_RE = re.compile(r"^cd\d+[a-z]*$")

#: Hematopoietic lineages named in captions, by the CL terms whose descendants belong to them. CL does not
#: place dendritic cells under "myeloid cell", so the mononuclear phagocytes are listed too.
LINEAGES: dict[str, tuple[str, ...]] = {
    "erythroid": ("CL:0000764",),  # erythroid lineage cell (CL files it under myeloid cell: checked first)
    "lymphoid": ("CL:0000542", "CL:0000838"),  # lymphocyte, lymphocyte of B lineage
    "myeloid": ("CL:0000763", "CL:0000766", "CL:0000113"),  # myeloid cell, myeloid leukocyte, mononuclear phagocyte
}


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


def _first_sentence(text: str) -> str:
    match = re.match(r"(.+?[.!?])(\s+[A-Z(]|$)", text.strip(), flags=re.DOTALL)
    return (match.group(1) if match else text).strip()


def _article(phrase: str) -> str:
    word = phrase.split()[0] if phrase.split() else phrase
    if word.isupper() and len(word) > 1:  # acronyms: "an NK cell", "a CD4-positive ..."
        return "an" if word[0] in "AEFHILMNORSX" else "a"
    return "an" if word[:1].lower() in "aeiou" else "a"


@dataclass(frozen=True)
class OntologyTerm:
    """One Cell Ontology term, optionally with the confidence of a match.

    Attributes
    ----------
    id
        CL identifier, e.g. ``"CL:0000623"``.
    name
        CL label, e.g. ``"natural killer cell"``.
    synonyms
        CL synonyms, in ontology order.
    definition
        CL textual definition, or `None` where the term has none.
    ancestors
        Names of the ancestors, nearest first, without the generic ones in
        :data:`GENERIC_ANCESTORS` (``"cell"``, ``"eukaryotic cell"``, ...).
    score
        Match confidence in [0, 1]; ``1.0`` for a direct lookup by id.

    """

    id: str
    name: str
    synonyms: tuple[str, ...]
    definition: str | None
    ancestors: tuple[str, ...]
    score: float = 1.0


class CellOntology:
    """The Cell Ontology shipped with ``cellxgene-ontology-guide``, with a lexical matcher.

    Build it with :meth:`CellOntology.load` (cached), not directly.

    Parameters
    ----------
    terms
        Raw term records keyed by CL id, as returned by
        ``cellxgene_ontology_guide.supported_versions.CXGSchema.ontology("CL")``.
    version
        Version string of the CL release, e.g. ``"v2026-03-26"``.

    Examples
    --------
    >>> cl = CellOntology.load()
    >>> cl.match("NK cells").name
    'natural killer cell'

    """

    def __init__(self, terms: dict[str, dict], version: str = "unknown") -> None:
        self._raw = terms
        self.version = version
        self._term_cache: dict[str, OntologyTerm] = {}
        # reverse of the (transitive) ancestor map: ancestor -> [(distance, descendant)]
        self._descendants: dict[str, list[tuple[int, str]]] = defaultdict(list)
        # candidate strings: (term id, is the CL name, token tuple)
        self._strings: list[tuple[str, bool, tuple[str, ...]]] = []
        df: dict[str, int] = defaultdict(int)
        n_active = 0
        for term_id, rec in terms.items():
            if rec.get("deprecated", False):
                continue
            n_active += 1
            for anc, dist in rec.get("ancestors", {}).items():
                self._descendants[anc].append((dist, term_id))
            seen: set[str] = set()
            for is_name, text in [(True, rec["label"])] + [(False, s) for s in rec.get("synonyms", [])]:
                toks = _tokenize(text)
                if toks:
                    self._strings.append((term_id, is_name, toks))
                    seen.update(toks)
            for tok in seen:
                df[tok] += 1
        for lst in self._descendants.values():
            lst.sort()
        self._idf = {tok: math.log((n_active + 1) / (n + 1)) + 1.0 for tok, n in df.items()}
        self._idf_oov = math.log(n_active + 1) + 1.0
        self._index: dict[str, list[int]] = defaultdict(list)
        self._weights: list[dict[str, float]] = []
        self._markers: list[frozenset[str]] = []
        self._norms: list[float] = []
        for i, (_, _, toks) in enumerate(self._strings):
            weights = self._token_weights(toks)
            for tok in toks:
                self._index[tok].append(i)
            self._weights.append(weights)
            self._markers.append(frozenset(t for t in toks if _is_marker(t, toks)))
            self._norms.append(math.sqrt(sum(w * w for w in weights.values())))
        # markers stated in a definition ("... with the phenotype CD45RA-positive") back up a match
        self._def_markers: dict[str, frozenset[str]] = {}
        for term_id, rec in terms.items():
            if not rec.get("deprecated", False) and rec.get("description"):
                toks = _tokenize(rec["description"])
                markers = frozenset(t for t in toks if _is_marker(t, toks))
                if markers:
                    self._def_markers[term_id] = markers
        # how broadly used a term is: curated high-level lists first, then number of descendants
        self._prior: dict[str, float] = {}
        curated = _curated_terms()
        for term_id in terms:
            n_desc = len(self._descendants.get(term_id, ()))
            self._prior[term_id] = (1.0 if term_id in curated else 0.0) + math.log1p(n_desc) / 10.0

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls) -> CellOntology:
        """Load the newest CL release shipped with ``cellxgene-ontology-guide``.

        The result is cached: every call returns the same object.

        Returns
        -------
        The shared :class:`CellOntology`.

        Examples
        --------
        >>> cl = CellOntology.load()
        >>> cl.term("CL:0000236").name
        'B cell'

        """
        return _load_default()

    # ------------------------------------------------------------------ lookups
    def __len__(self) -> int:
        return sum(1 for rec in self._raw.values() if not rec.get("deprecated", False))

    def __contains__(self, term_id: object) -> bool:
        return isinstance(term_id, str) and self._normalise_id(term_id) in self._raw

    def __repr__(self) -> str:
        return f"CellOntology(version={self.version!r}, n_terms={len(self)})"

    @staticmethod
    def _normalise_id(term_id: str) -> str:
        match = _ID_RE.fullmatch(term_id.strip())
        return f"CL:{match.group(1)}" if match else term_id.strip()

    def term(self, term_id: str) -> OntologyTerm:
        """Return the term with the given CL id.

        Parameters
        ----------
        term_id
            A CL id, ``"CL:0000623"`` (``"CL_0000623"`` is accepted too).

        Returns
        -------
        The :class:`OntologyTerm`, with ``score=1.0``.

        Raises
        ------
        KeyError
            If the id is not in this CL release.

        Examples
        --------
        >>> CellOntology.load().term("CL:0000623").name
        'natural killer cell'

        """
        key = self._normalise_id(term_id) if isinstance(term_id, str) else term_id
        if key not in self._raw:
            raise KeyError(
                f"{term_id!r} is not a term of the Cell Ontology {self.version}; pass an id like 'CL:0000623', "
                "or use `CellOntology.match()` for a free-text cell type name."
            )
        if key not in self._term_cache:
            rec = self._raw[key]
            names = tuple(self._raw[a]["label"] for a in self._ranked_ancestors(key))
            self._term_cache[key] = OntologyTerm(
                id=key,
                name=rec["label"],
                synonyms=tuple(rec.get("synonyms", ())),
                definition=rec.get("description") or None,
                ancestors=names,
                score=1.0,
            )
        return self._term_cache[key]

    def _scored(self, term_id: str, score: float) -> OntologyTerm:
        base = self.term(term_id)
        return OntologyTerm(base.id, base.name, base.synonyms, base.definition, base.ancestors, float(score))

    def descendants(self, term_id: str) -> list[str]:
        """Return the ids of all (non-obsolete) descendants of a term, nearest first.

        Parameters
        ----------
        term_id
            A CL id.

        Returns
        -------
        Descendant ids, sorted by distance then id; the term itself is not included.

        Examples
        --------
        >>> "CL:0000625" in CellOntology.load().descendants("CL:0000084")
        True

        """
        key = self.term(term_id).id
        return [d for _, d in self._descendants.get(key, [])]

    def ancestors(self, term_id: str) -> list[str]:
        """Return the ids of a term's ancestors, nearest first, without the generic ones.

        The ids behind :attr:`OntologyTerm.ancestors` (which holds names): ancestors named in
        :data:`GENERIC_ANCESTORS` (``"cell"``, ``"somatic cell"``, ...) are left out.

        Parameters
        ----------
        term_id
            A CL id.

        Returns
        -------
        Ancestor ids, sorted by distance then name; the term itself is not included.

        Examples
        --------
        >>> "CL:0000084" in CellOntology.load().ancestors("CL:0000625")
        True

        """
        return self._ranked_ancestors(self.term(term_id).id)

    def _ranked_ancestors(self, key: str) -> list[str]:
        """Ancestor ids of a known term id, by distance then name, without :data:`GENERIC_ANCESTORS`."""
        ancestors = self._raw[key].get("ancestors", {})
        ranked = sorted((d, self._raw[a]["label"], a) for a, d in ancestors.items() if a in self._raw)
        return [a for _, name, a in ranked if name not in GENERIC_ANCESTORS]

    # ------------------------------------------------------------------ matching
    def _token_weights(self, tokens: tuple[str, ...]) -> dict[str, float]:
        """IDF weight of each token; unseen tokens get the largest IDF."""
        return {tok: self._idf.get(tok, self._idf_oov) for tok in tokens}

    def _rank(self, text: str) -> list[tuple[float, float, str]]:
        """Score every term for ``text``; return ``(score, prior, id)``, best first.

        The score is an IDF-weighted cosine between the label's tokens and a CL name or
        synonym. Markers / qualifiers named only by the CL term count less, markers the
        label names and the CL definition (not the name) states count a bit.  Near ties go to
        the more general, well-known term, unless a descendant of the winner explains more of
        the label by its name (``"CD4+ Naive T"``: the CD4-positive naive T cell over naive T cell).
        """
        tokens = _tokenize(text)
        if not tokens:
            return []
        q_weights = self._token_weights(tokens)
        q_markers = {tok for tok in tokens if _is_marker(tok, tokens)}
        q_norm_sq = sum(w * w for w in q_weights.values())
        # only tokens with letters open candidates ("0" or "3" alone match nothing)
        hits = {i for tok in q_weights if re.search("[a-z]", tok) for i in self._index.get(tok, ())}
        best: dict[str, float] = {}
        coverage: dict[str, float] = {}
        q_unmatched = 1.0 - _QUERY_MARKER_WEIGHT**2
        c_unmatched = 1.0 - _TERM_MARKER_WEIGHT**2
        for i in hits:
            term_id, is_name, _ = self._strings[i]
            weights = self._weights[i]
            dot = 0.0
            q_sq, c_sq = q_norm_sq, self._norms[i] ** 2
            for tok, w in q_weights.items():
                if tok in weights:
                    dot += w * weights[tok]
                elif tok in q_markers:
                    if tok in self._def_markers.get(term_id, ()):
                        # confirmed by the definition rather than the name
                        dot += _DEFINITION_WEIGHT * w * w
                        c_sq += (_DEFINITION_WEIGHT * w) ** 2
                    else:
                        q_sq -= q_unmatched * w * w
            for tok in self._markers[i]:
                if tok not in q_weights:
                    c_sq -= c_unmatched * weights[tok] ** 2
            score = dot / math.sqrt(q_sq * c_sq)
            if not is_name:
                score *= 0.97  # synonyms include broad / related ones; names win ties
            if score > best.get(term_id, 0.0):
                best[term_id] = score
                coverage[term_id] = sum(w for tok, w in q_weights.items() if tok in weights)
        ranked = [(min(s, 1.0), self._prior[t], t) for t, s in best.items()]
        # near-equal scores are ties; break them toward more general, well-known terms
        ranked.sort(key=lambda r: (-round(r[0], 3), -r[1], r[2]))
        if ranked:
            top_score, _, top = ranked[0]
            below = {d for _, d in self._descendants.get(top, ())}
            refined = [
                r
                for r in ranked[1:]
                if r[2] in below and r[0] >= top_score - _REFINE_MARGIN and coverage[r[2]] > coverage[top] + 1e-9
            ]
            if refined:
                ranked.remove(refined[0])
                ranked.insert(0, refined[0])
        return ranked

    def match(self, label: str, *, min_score: float = 0.5) -> OntologyTerm | None:
        """Map a free-text cell type name to its best CL term.

        Handles CL ids (``"CL:0000236"``), exact names and synonyms, case, plurals, marker
        notation (``"CD14+ Monocyte"``, ``"CD4+/CD25- T"``) and common abbreviations
        (``NK``, ``Treg``, ``DC``, ``pDC``, ``HSC``, ``Mono``, ``Mk``, ``RBC``, ...).

        Parameters
        ----------
        label
            The cell type name as it appears in the data.
        min_score
            Smallest match confidence accepted, in [0, 1].

        Returns
        -------
        The best :class:`OntologyTerm` with its ``score``, or `None` if no term reaches
        ``min_score``.

        Examples
        --------
        >>> CellOntology.load().match("CD14+ Monocytes").name
        'CD14-positive monocyte'

        """
        if not isinstance(label, str) or not label.strip():
            return None
        id_match = _ID_RE.search(label)
        if id_match:
            key = f"CL:{id_match.group(1)}"
            if key in self._raw:
                replacement = self._raw[key].get("replaced_by")
                if self._raw[key].get("deprecated", False) and replacement in self._raw:
                    key = replacement
                return self._scored(key, 1.0)
        ranked = self._rank(label)
        if not ranked or ranked[0][0] < min_score:
            logger.debug("no CL match for %r (best score %.2f)", label, ranked[0][0] if ranked else 0.0)
            return None
        score, _, term_id = ranked[0]
        return self._scored(term_id, score)

    def search(self, text: str, *, n: int = 5) -> list[OntologyTerm]:
        """Return the ``n`` CL terms that match ``text`` best, best first.

        Parameters
        ----------
        text
            Free text, e.g. ``"memory B"``.
        n
            Number of terms to return at most.

        Returns
        -------
        Terms with their match ``score``; fewer than ``n`` if fewer terms share a token with ``text``.

        Examples
        --------
        >>> [t.name for t in CellOntology.load().search("monocyte", n=2)][0]
        'monocyte'

        """
        return [self._scored(term_id, score) for score, _, term_id in self._rank(text)[: max(int(n), 0)]]

    # ------------------------------------------------------------------ text
    def describe(self, label: str, *, detail: str = "full") -> str:
        """Return a short phrase describing a cell type label, for captions.

        Parameters
        ----------
        label
            The cell type name as it appears in the data.
        detail
            ``"name"``: label and CL name; ``"short"``: also a synonym and up to two informative
            ancestors; ``"full"``: also the first sentence of the CL definition.

        Returns
        -------
        A phrase of at most about 60 words, or ``label`` unchanged when it matches no term.

        Examples
        --------
        >>> CellOntology.load().describe("NK", detail="short")
        'NK, a natural killer cell (NK cell), a kind of innate lymphoid cell and lymphocyte'

        """
        if detail not in {"name", "short", "full"}:
            raise ValueError(f"detail={detail!r} is not one of 'name', 'short', 'full'.")
        term = self.match(label)
        if term is None:
            return label
        same = label.strip().lower() == term.name.lower()
        text = label if same else f"{label}, {_article(term.name)} {term.name}"
        if detail == "name":
            return text
        low = {label.strip().lower(), term.name.lower()}
        short_syns = [s for s in term.synonyms if s.lower() not in low and len(s.split()) <= 3]
        if short_syns:
            text += f" ({min(short_syns, key=len)})"
        ancestors = self._informative_ancestors(term)[:2]
        if ancestors:
            text += f", a kind of {' and '.join(ancestors)}"
        if detail == "full" and term.definition:
            budget = 60 - len(text.split())
            words = _first_sentence(term.definition).split()
            if budget >= 5:
                sentence = " ".join(words[:budget])
                if len(words) > budget:
                    sentence = sentence.rstrip(",;:") + " ..."
                text += f". {sentence}"
        return text

    def lineage(self, label: str) -> str | None:
        """Return the hematopoietic lineage of a cell type label (``"myeloid"``, ``"lymphoid"``, ``"erythroid"``).

        Parameters
        ----------
        label
            A cell type name or CL id.

        Returns
        -------
        The first lineage in :data:`LINEAGES` whose root terms include the matched term or one of its
        ancestors, or `None` (no match, or no lineage).

        Examples
        --------
        >>> CellOntology.load().lineage("Dendritic")
        'myeloid'

        """
        term = self.match(label)
        if term is None:
            return None
        ancestors = set(self._raw[term.id].get("ancestors", {})) | {term.id}
        for name, roots in LINEAGES.items():
            if ancestors.intersection(roots):
                return name
        return None

    def _informative_ancestors(self, term: OntologyTerm) -> list[str]:
        """Ancestor names without qualified variants of a near ancestor ("group 1 innate lymphoid cell")."""
        dist = {self._raw[a]["label"]: d for a, d in self._raw[term.id].get("ancestors", {}).items() if a in self._raw}
        return [
            a
            for a in term.ancestors
            if not any(b != a and b in a and dist.get(b, 99) - dist.get(a, 0) <= 1 for b in term.ancestors)
        ]

    def text_pairs(self, term_ids: Iterable[str]) -> list[tuple[str, str]]:
        """Pairs of texts that mean (nearly) the same cell type, as extra text training signal.

        Parameters
        ----------
        term_ids
            CL ids; duplicates are used once.

        Returns
        -------
        ``(synonym, name)``, ``(definition, name)`` and ``(name, ancestor name)`` pairs (the
        nearest three informative ancestors), in input order.

        Examples
        --------
        >>> ("NK cell", "natural killer cell") in CellOntology.load().text_pairs(["CL:0000623"])
        True

        """
        if isinstance(term_ids, str):
            term_ids = [term_ids]
        pairs: list[tuple[str, str]] = []
        seen: set[str] = set()
        for term_id in term_ids:
            term = self.term(term_id)
            if term.id in seen:
                continue
            seen.add(term.id)
            pairs.extend((syn, term.name) for syn in term.synonyms if syn != term.name)
            if term.definition:
                pairs.append((term.definition, term.name))
            pairs.extend((term.name, anc) for anc in self._informative_ancestors(term)[:3])
        return pairs


def _curated_terms() -> frozenset[str]:
    """CL ids in cellxgene's curated high-level cell class / subclass lists."""
    try:
        from cellxgene_ontology_guide.curated_ontology_term_lists import (
            CuratedOntologyTermList,
            get_curated_ontology_term_list,
        )

        ids: set[str] = set()
        for name in ("CELL_CLASS", "CELL_SUBCLASS"):
            ids.update(get_curated_ontology_term_list(getattr(CuratedOntologyTermList, name)))
        return frozenset(ids)
    except (ImportError, AttributeError, OSError, ValueError) as err:  # optional refinement only
        logger.debug("curated CL lists unavailable (%s); ranking ties by descendants only", err)
        return frozenset()


@functools.lru_cache(maxsize=1)
def _load_default() -> CellOntology:
    from cellxgene_ontology_guide.ontology_parser import OntologyParser

    start = time.perf_counter()
    schema = OntologyParser().cxg_schema
    version = str(schema.supported_ontologies["CL"]["version"])
    cl = CellOntology(schema.ontology("CL"), version=version)
    logger.debug("loaded Cell Ontology %s (%d terms) in %.2fs", version, len(cl), time.perf_counter() - start)
    return cl
