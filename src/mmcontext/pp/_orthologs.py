"""Ortholog tables: apply a model trained on one species to another species' cells, by gene.

The Ensembl ortholog tables the ``celltypist`` wheel ships (``celltypist/data/samples/Ensembl*_<A>2<B>_Genes.csv``:
human-mouse, human-pig, human-rhesus, human-cynomolgus and between those) are found by species name; any other
two-column table (a CSV, a DataFrame or a dict) works the same way.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

_TABLE_RE = re.compile(r"^Ensembl(\d+)_([A-Za-z]+)2([A-Za-z]+)_Genes\.csv$")


@dataclass
class OrthologTable:
    """Pairs of (reference gene, gene of the other species), one row per pair, in table order.

    Attributes
    ----------
    name
        Where the table came from (a file name, ``"DataFrame"`` or ``"dict"``), recorded in ``uns``.
    pairs
        DataFrame with the columns ``reference`` and ``target``.

    """

    name: str
    pairs: pd.DataFrame

    @property
    def n_by_symbol(self) -> int:
        """Pairs found by the case-insensitive symbol fallback rather than in the table."""
        return int((self.pairs["how"] == "symbol").sum()) if "how" in self.pairs else 0


def _celltypist_dir() -> Path:
    spec = importlib.util.find_spec("celltypist")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "orthologs= given as a species name reads the Ensembl ortholog tables that the `celltypist` package "
            "ships; install it with `pip install mmcontext[orthologs]` (or `pip install celltypist`), or pass your "
            "own table (a CSV path, a DataFrame or a dict {model gene: gene here})."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "samples"


def species_tables() -> dict[tuple[str, str], Path]:
    """The shipped Ensembl tables by ``(species A, species B)`` (lower-case; columns A, B); newest release first."""
    folder = _celltypist_dir()
    found: dict[tuple[str, str], tuple[int, Path]] = {}
    for path in folder.glob("Ensembl*_Genes.csv") if folder.is_dir() else []:
        m = _TABLE_RE.match(path.name)
        if m:
            key = (m.group(2).lower(), m.group(3).lower())
            if key not in found or int(m.group(1)) > found[key][0]:
                found[key] = (int(m.group(1)), path)
    return {k: v[1] for k, v in found.items()}


def _species_table(species: str, reference_species: str) -> tuple[str, pd.DataFrame]:
    tables = species_tables()
    s, r = species.strip().lower(), reference_species.strip().lower()
    for key, flip in (((r, s), False), ((s, r), True)):
        if key in tables:
            df = pd.read_csv(tables[key], header=None, dtype=str).iloc[:, :2]
            return tables[key].name, (df.iloc[:, ::-1] if flip else df)
    names = sorted({x for pair in tables for x in pair})
    raise ValueError(
        f"No shipped ortholog table between {reference_species!r} and {species!r}; celltypist ships tables for "
        f"{names!r}. Pass your own table (a CSV path, a DataFrame or a dict) as orthologs=."
    )


def _orient(df: pd.DataFrame, reference_genes: Any) -> pd.DataFrame:
    """Two columns as (reference, target): the column sharing more genes with the reference comes first."""
    if df.shape[1] < 2:
        raise ValueError(f"An ortholog table needs two columns (reference gene, gene here); got {df.shape[1]}.")
    df = df.iloc[:, :2].astype(object)
    df.columns = ["a", "b"]
    if reference_genes is not None:
        ref = set(map(str, reference_genes))
        if df["b"].isin(ref).sum() > df["a"].isin(ref).sum():
            df = df[["b", "a"]]
    df.columns = ["reference", "target"]
    df = df.dropna()
    df = df[(df["reference"].astype(str).str.len() > 0) & (df["target"].astype(str).str.len() > 0)]
    return df.astype(str).drop_duplicates().reset_index(drop=True)


def ortholog_map(
    orthologs: str | os.PathLike | pd.DataFrame | Mapping[str, str],
    *,
    reference_genes: Any = None,
    var_names: Any = None,
    reference_species: str = "human",
    symbols: bool = True,
) -> OrthologTable:
    """Read an ortholog table: a species name, a CSV path, a two-column DataFrame, or ``{reference gene: gene here}``.

    Parameters
    ----------
    orthologs
        ``"mouse"``, ``"pig"``, ``"rhesus"``, ``"cynomolgus"`` (Ensembl tables shipped with the optional
        ``celltypist`` package), a CSV file with two columns (with or without a header), a DataFrame whose first
        two columns pair genes, or a dict. Which column is the reference's is detected by overlap with
        ``reference_genes`` (as CellTypist's ``Model.convert`` does).
    reference_genes
        The model's genes (orients the table).
    var_names
        This data's genes; only pairs whose target is among them are kept.
    reference_species
        Species of the model's genes for a species-name table.

    symbols
        With ``var_names``: a reference gene still unmapped (the table has no partner for it among this data's genes)
        is paired with a gene of this data spelled the same up to case (``CCL5`` -> ``Ccl5``, ``SEPT7`` -> ``Sept7``),
        if no table pair took that gene. Ensembl 105 lists no mouse gene for CCL5, NPM1, PPIA or LDHA, and none
        for old human symbols such as SEPT7 or FYB.

    Returns
    -------
    An :class:`OrthologTable`, one reference gene per target and one target per reference gene, with a column
    ``how`` (``"table"`` or ``"symbol"``). Where a reference gene has several partners here (one-to-many, e.g.
    GZMB -> Gzmb, Gzmc, ..., Gzmg), the one spelled like it up to case wins, else the first in table order; where
    several reference genes share a partner (many-to-one), the same rule picks the one that keeps it.

    Examples
    --------
    >>> table = ortholog_map({"CD8A": "Cd8a", "MS4A1": "Ms4a1"})  # doctest: +SKIP

    """
    if isinstance(orthologs, Mapping):
        name, df = "dict", pd.DataFrame(list(orthologs.items()))
    elif isinstance(orthologs, pd.DataFrame):
        name, df = "DataFrame", orthologs
    elif isinstance(orthologs, (str, os.PathLike)) and os.path.isfile(orthologs):
        name = os.path.basename(os.fspath(orthologs))
        df = pd.read_csv(orthologs, header=None, dtype=str, sep=None, engine="python")
    elif isinstance(orthologs, str) and re.fullmatch(r"[A-Za-z]+", orthologs.strip()):
        name, df = _species_table(orthologs, reference_species)
    else:
        raise TypeError(
            f"orthologs={orthologs!r} is not a species name, an existing CSV path, a DataFrame or a dict "
            "{model gene: gene here}."
        )
    pairs = _orient(df, reference_genes)
    if reference_genes is not None:
        pairs = pairs[pairs["reference"].isin(set(map(str, reference_genes)))]
    if var_names is not None:
        pairs = pairs[pairs["target"].isin(set(map(str, var_names)))]
    # one partner per gene, both ways: a partner spelled like the reference gene (up to case) first, then table order
    same = pairs["reference"].str.upper() == pairs["target"].str.upper()
    pairs = pairs.iloc[np.argsort(~same.to_numpy(), kind="stable")]
    pairs = pairs.drop_duplicates("reference").drop_duplicates("target").sort_index().reset_index(drop=True)
    pairs["how"] = "table"
    if reference_genes is not None and pairs.empty:
        here = list(map(str, var_names))[:3] if var_names is not None else []
        raise ValueError(
            f"The ortholog table {name!r} maps none of the reference's genes to this data's genes (e.g. "
            f"{list(map(str, reference_genes))[:3]!r} vs {here!r}); "
            "check the species and the gene identifiers (symbols vs Ensembl ids)."
        )
    if symbols and reference_genes is not None and var_names is not None:
        pairs = _add_symbol_pairs(pairs, reference_genes, var_names)
    return OrthologTable(name, pairs)


def _add_symbol_pairs(pairs: pd.DataFrame, reference_genes: Any, var_names: Any) -> pd.DataFrame:
    """Pair still-unmapped reference genes with this data's genes of the same symbol up to case (unused ones)."""
    mapped, taken = set(pairs["reference"]), set(pairs["target"])
    by_upper: dict[str, list[str]] = {}
    for g in map(str, var_names):
        if g not in taken:
            by_upper.setdefault(g.upper(), []).append(g)
    extra = []
    for ref in dict.fromkeys(map(str, reference_genes)):
        here = by_upper.get(ref.upper(), [])
        if ref not in mapped and len(here) == 1:  # an ambiguous spelling (two genes differing by case) is skipped
            extra.append((ref, here[0], "symbol"))
            by_upper.pop(ref.upper())
    if not extra:
        return pairs
    return pd.concat([pairs, pd.DataFrame(extra, columns=pairs.columns)], ignore_index=True)


def translate_var_names(var_names: Any, table: OrthologTable, reference_genes: Any) -> tuple[pd.Index, int]:
    """Rename this data's genes to their reference orthologs (genes without one keep their name).

    Returns the renamed (unique) names and how many reference genes were mapped. Unmapped genes keep their
    name, suffixed with ``"-unmapped"`` where it would collide with a mapped name.
    """
    names = np.asarray(var_names).astype(str)
    to_ref = dict(zip(table.pairs["target"], table.pairs["reference"], strict=True))
    out = np.array([to_ref.get(g, g) for g in names], dtype=object)
    mapped = np.array([g in to_ref for g in names])
    taken = set(out[mapped])
    out[~mapped] = [f"{g}-unmapped" if g in taken else g for g in out[~mapped]]
    ref = set(map(str, reference_genes))
    n_mapped = int(sum(1 for g in set(out[mapped]) if g in ref))
    return pd.Index(out.astype(str)), n_mapped
