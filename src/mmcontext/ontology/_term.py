"""One Cell Ontology term, and the ancestors too generic to name."""

from __future__ import annotations

from dataclasses import dataclass

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
