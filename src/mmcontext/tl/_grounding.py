"""Marker-gene evidence: cell-type names grounded in the expression the model's input space carries.

A name that meets cells (a query, a label) is looked up in the marker table (:mod:`mmcontext.ontology`: canonical
marker genes per Cell Ontology term, inherited from the nearest ancestor with markers, plus the CD antigens the name
spells out). Each marker gene is read where the model's input carries it and standardised with the model's own
training statistics, so a cell's evidence depends on that cell only:

- gene-panel input: the panel column of the gene (``(x - training mean) / training sd``);
- PCA input: the gene's expression reconstructed from the stored loadings (``mean + scores @ loadings``), its training
  mean and sd derived from the loadings and the components' training mean and sd;
- any other input (an ``obsm`` key given as ``use_rep=``, or a model without a gene space): the log-normalised
  expression (``adata.raw`` behind a scaled ``X``, else ``X``) by gene name, standardised over the cells given.

The evidence of a name is the mean of its genes' standardised values (each clipped to +-:data:`Z_CLIP`); it is added
to the text score as ``score + weight * evidence``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .._logging import logger

if TYPE_CHECKING:
    from anndata import AnnData

    from ..models import MMContextEncoder

#: Default weight of the marker evidence: ``score + MARKER_WEIGHT * evidence``. The evidence is in training standard
#: deviations (a cell one sd above the training mean on every marker gene has evidence 1); a cosine score of a
#: trained model spans about 0.5 between a matching and a non-matching cell, so one sd of marker evidence moves a
#: score by a tenth of that.
MARKER_WEIGHT = 0.05
#: Standardised marker values are clipped to +-this, so one gene cannot carry a name alone.
Z_CLIP = 5.0
#: Smallest standard deviation a gene is divided by (log-normalised units).
MIN_SD = 0.05
#: Best cells per name whose per-gene values are kept in ``uns`` for :func:`mmcontext.pl.markers`.
TOP_CELLS = 50


@dataclass
class Evidence:
    """Marker evidence of several names on the same cells.

    Attributes
    ----------
    scores
        float32, cells x names: mean standardised marker expression (0 where a name has no usable gene).
    explain
        One h5ad-safe dict per name: the matched term, the term whose markers were used, the genes used and those
        missing from the input, and how the expression was read.
    per_gene
        Per name, cells x used genes standardised values (kept to summarise the top cells, not written).

    """

    scores: np.ndarray
    explain: list[dict[str, Any]]
    per_gene: list[np.ndarray] = field(default_factory=list)

    def summarise(self, combined: np.ndarray, *, top: int = TOP_CELLS) -> None:
        """Add each gene's mean standardised value in the ``top`` best cells (by ``combined``) and in all cells."""
        for j, info in enumerate(self.explain):
            if "gene_z_top" not in info:  # (names summarised while the evidence was read are done)
                info.update(_gene_summary(self.per_gene[j], combined[:, j], top))


def _gene_summary(Z: np.ndarray, combined: np.ndarray, top: int = TOP_CELLS) -> dict[str, list[float]]:
    if Z.shape[1] == 0:
        return {"gene_z_top": [], "gene_z_all": []}
    best = np.argsort(-combined, kind="stable")[: min(top, len(combined))]
    return {"gene_z_top": [float(v) for v in Z[best].mean(axis=0)], "gene_z_all": [float(v) for v in Z.mean(axis=0)]}


class _GeneReader:
    """Standardised expression of genes by name, read from where the model's input carries them."""

    def __init__(self, adata: AnnData, model: MMContextEncoder, use_rep: str | None):
        from ..pp._reference import space_from_model

        self.adata = adata
        self.space = space_from_model(model)
        omics = model.omics_encoder
        self.in_mean = omics.input_mean.detach().cpu().numpy().astype(np.float64)
        self.in_scale = omics.input_scale.detach().cpu().numpy().astype(np.float64)
        self.init = None
        self.how = ""
        key = self._init_key(use_rep)
        if self.space is not None and key is not None:
            init = adata.obsm[key]  # read in z(), for the genes asked (search reads only its candidates' rows)
            init = np.asarray(init) if hasattr(init, "iloc") else init  # a DataFrame in obsm
            if init.shape[1] == self.space.n_features == len(self.in_mean):
                self.init = init
                kind = "gene panel" if self.space.loadings is None else "PCA reconstruction from the model's loadings"
                self.how = f"{kind} (obsm[{key!r}])"
        self._expr = None
        self._index: dict[str, int] = {}
        if self.init is not None:
            self._index = {str(g): i for i, g in enumerate(self.space.genes)}

    def _init_key(self, use_rep: str | None) -> str | None:
        from .. import _keys

        if use_rep == "X":
            return None
        key = use_rep or self.adata.uns.get(_keys.UNS, {}).get("prepare", {}).get("init_key", _keys.X_INIT)
        return key if key in self.adata.obsm else None

    def _expression(self):
        if self._expr is None:
            from ..pp._source import expression_source

            if self.adata.raw is None and (self.adata.X is None or self.adata.n_vars == 0):
                # no genes to read (e.g. an AnnData holding only an obsm embedding): no marker evidence
                self._expr, self._index, self.how = False, {}, "no expression in this AnnData (no marker evidence)"
                return self._expr
            src = expression_source(self.adata, None, quiet=True)
            self._expr = src
            self._index = {str(g): i for i, g in enumerate(src.var_names)}
            self.how = f"{src.what} by gene name, standardised over these cells"
        return self._expr

    def available(self, genes: Sequence[str]) -> list[str]:
        if self.init is None:
            self._expression()
        return [g for g in genes if g in self._index]

    def z(self, genes: list[str]) -> np.ndarray:
        """Cells x genes standardised values, clipped to +-Z_CLIP."""
        if not genes:
            return np.zeros((self.adata.n_obs, 0), dtype=np.float32)
        idx = np.array([self._index[g] for g in genes])
        if self.init is not None and self.space.loadings is None:
            X = np.asarray(self.init[:, idx], dtype=np.float64)
            mu, sd = self.in_mean[idx], self.in_scale[idx]
        elif self.init is not None:
            L = np.asarray(self.space.loadings, dtype=np.float64)[idx]  # genes x components
            gene_mean = np.asarray(self.space.mean, dtype=np.float64)[idx]
            X = np.asarray(self.init, dtype=np.float64) @ L.T + gene_mean
            mu = gene_mean + L @ self.in_mean
            sd = np.sqrt((L**2) @ (self.in_scale**2))
        else:
            from scipy import sparse

            src = self._expression()
            cols = src.rows(src.X[:, idx])
            X = cols.toarray() if sparse.issparse(cols) else np.asarray(cols, dtype=np.float64)
            mu, sd = X.mean(axis=0), X.std(axis=0)
        Z = (X - mu) / np.maximum(sd, MIN_SD)
        return np.clip(Z, -Z_CLIP, Z_CLIP).astype(np.float32)


def marker_evidence(
    adata: AnnData,
    model: MMContextEncoder,
    names: Sequence[str],
    *,
    markers: Mapping[str, Sequence[str] | str] | str | bool | None = True,
    use_rep: str | None = None,
    combine: tuple[np.ndarray, float] | None = None,
) -> Evidence | None:
    """Marker evidence of each name on each cell, or ``None`` when ``markers`` is off.

    Parameters
    ----------
    adata
        The cells.
    model
        The model whose input space the genes are read from.
    names
        Cell type names or queries.
    markers
        ``True``: the shipped table; a dict or CSV path: the shipped table extended by it
        (:meth:`~mmcontext.ontology.MarkerTable.load`); ``False`` / ``None``: no evidence.
    use_rep
        ``obsm`` key of the initial embedding, as given to the calling function.
    combine
        ``(scores, weight)``: the cells x names scores the evidence will be added to with that weight. Each name is
        then summarised as it is read (:meth:`Evidence.summarise` on ``scores + weight * evidence``) and its
        cells x genes values are not kept: memory stays at one name's genes, whatever the number of names.

    Returns
    -------
    An :class:`Evidence`, or ``None``.

    """
    if markers is None or markers is False:
        return None
    lookup, reader = _marker_lookup(adata, model, markers, use_rep)
    scores = np.zeros((adata.n_obs, len(names)), dtype=np.float32)
    explain, per_gene = [], []
    for j, name in enumerate(names):
        found, genes, used = lookup(name)
        Z = reader.z(used)
        if used:
            scores[:, j] = Z.mean(axis=1)
        summary = {}
        if combine is not None:
            summary = _gene_summary(Z, combine[0][:, j] + combine[1] * scores[:, j])
            Z = Z[:0]  # summarised: not kept
        per_gene.append(Z)
        explain.append(
            {
                "text": name,
                "term_id": found.term_id if found is not None and found.term_id else "",
                "term_name": found.term_name if found is not None and found.term_name else "",
                "markers_from_id": found.source_id if found is not None and found.source_id else "",
                "markers_from": found.source_name if found is not None and found.source_name else "",
                "inherited": bool(found.inherited) if found is not None else False,
                "source": found.source if found is not None else "",
                "genes": used,
                "missing_genes": [g for g in genes if g not in used],
                "name_genes": list(found.name_genes) if found is not None else [],
                "read_from": reader.how,
                **summary,
            }
        )
        if not used:
            logger.info("no marker genes for %r in the model's input; its score is the text score alone", name)
    return Evidence(scores, explain, per_gene)


def marker_genes(
    adata: AnnData,
    model: MMContextEncoder,
    names: Sequence[str],
    *,
    markers: Mapping[str, Sequence[str] | str] | str | bool | None = True,
    use_rep: str | None = None,
) -> list[list[str]]:
    """The marker genes :func:`marker_evidence` would use for each name (none read from the cells)."""
    if markers is None or markers is False:
        return [[] for _ in names]
    lookup, _ = _marker_lookup(adata, model, markers, use_rep)
    return [lookup(name)[2] for name in names]


def _marker_lookup(adata: AnnData, model: MMContextEncoder, markers: Any, use_rep: str | None):
    """``(lookup, reader)``: ``lookup(name)`` gives the table entry, its marker genes and those the cells carry."""
    from ..ontology import MarkerTable

    table = MarkerTable.load(None if markers is True else markers)
    reader = _GeneReader(adata, model, use_rep)

    def lookup(name: str):
        found = table.lookup(name)
        genes = list(found.genes) if found is not None else []
        return found, genes, reader.available(genes)

    return lookup, reader


def check_marker_weight(weight: Any) -> float:
    """``marker_weight`` as a float >= 0, or an error."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.number)) or not float(weight) >= 0:
        raise ValueError(f"marker_weight must be a number >= 0, got {weight!r}.")
    return float(weight)


def write_evidence(adata: AnnData, keys: Sequence[str], evidence: Evidence, weight: float) -> list[tuple[str, str]]:
    """Write ``obs[<key>_markers]`` per name with genes and merge the explanations into ``uns['mmcontext']['markers']``.

    A name none of whose marker genes the data holds gets no column (its evidence is 0); its explanation says so.
    """
    from .. import _keys
    from .._provenance import record
    from ._obs import write_obs_columns

    previous = dict(adata.uns.get(_keys.UNS, {}).get("markers", {}))
    previous.pop("versions", None)
    previous.pop("time", None)
    found = [j for j, e in enumerate(evidence.explain) if e["genes"]]  # no column for a name without genes here
    columns = [f"{keys[j]}_markers" for j in found]
    stale = [f"{key}_markers" for key in keys]
    write_obs_columns(adata, columns, evidence.scores[:, found].astype(np.float32, copy=False), drop=stale)
    for j, key in enumerate(keys):
        previous[key] = {**evidence.explain[j], "weight": float(weight)}
    record(adata, "markers", previous)
    return [(column, "obs") for column in columns]
