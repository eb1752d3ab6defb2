"""The free-text matcher: an IDF-weighted token cosine between a label and every CL name and synonym.

A mixin of :class:`~mmcontext.ontology.CellOntology`: it reads the raw terms (``self._raw``) and the descendant map
(``self._descendants``) the ontology builds, and adds :meth:`match` and :meth:`search`.
"""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict

from ._term import OntologyTerm
from ._tokens import _ID_RE, _is_marker, _tokenize

logger = logging.getLogger("mmcontext")

# Markers / qualifiers that only the query names keep this weight; those only the CL name
# spells out ("alpha-beta", "CD16-positive, CD56-dim ..., human") count less.
_QUERY_MARKER_WEIGHT = 1.0
_TERM_MARKER_WEIGHT = 0.5
_REFINE_MARGIN = 0.2  # how much lower a more specific term may score and still win (see _rank)
_DEFINITION_WEIGHT = 0.3  # a marker confirmed by the definition, not the name, counts a bit less


class LexicalMatcher:
    """Index of CL names and synonyms for :meth:`match` / :meth:`search` (mixed into ``CellOntology``)."""

    _raw: dict[str, dict]
    _descendants: dict[str, list[tuple[int, str]]]

    def _build_matcher(self, terms: dict[str, dict], curated: frozenset[str]) -> None:
        """Index every active term's name and synonyms; IDF over terms; the tie-breaking prior."""
        # candidate strings: (term id, is the CL name, token tuple)
        self._strings: list[tuple[str, bool, tuple[str, ...]]] = []
        df: dict[str, int] = defaultdict(int)
        n_active = 0
        for term_id, rec in terms.items():
            if rec.get("deprecated", False):
                continue
            n_active += 1
            seen: set[str] = set()
            for is_name, text in [(True, rec["label"])] + [(False, s) for s in rec.get("synonyms", [])]:
                toks = _tokenize(text)
                if toks:
                    self._strings.append((term_id, is_name, toks))
                    seen.update(toks)
            for tok in seen:
                df[tok] += 1
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
        for term_id in terms:
            n_desc = len(self._descendants.get(term_id, ()))
            self._prior[term_id] = (1.0 if term_id in curated else 0.0) + math.log1p(n_desc) / 10.0

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
