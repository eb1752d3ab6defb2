"""Captions: human-readable sentences about each cell, built from its ``obs`` metadata."""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import _keys
from .._docs import doc_params
from .._logging import log_added
from .._provenance import find_record, record
from .._validation import (
    MMContextKeyError,
    check_adata,
    check_key_added,
    check_outputs,
    check_text_column,
    check_writable,
    get_obs_column,
)

if TYPE_CHECKING:
    from anndata import AnnData

#: Roles a caption can mention, with the ``obs`` columns tried for each (cellxgene schema names first).
ROLE_CANDIDATES: dict[str, tuple[str, ...]] = {
    "cell_type": _keys.CELL_TYPE_CANDIDATES,
    "tissue": ("tissue", "tissue_general", "organ", "tissue_type"),
    "disease": ("disease", "condition", "disease_state"),
    "development_stage": ("development_stage", "age", "age_group"),
    "sex": ("sex", "gender"),
    "organism": ("organism", "species"),
}
_HEALTHY = {"normal", "healthy", "control", "none", "na", "n/a", ""}


def detect_caption_keys(adata: AnnData) -> dict[str, str]:
    """Map caption roles to the ``obs`` columns found in ``adata`` (case-insensitive, first match wins).

    Returns
    -------
    ``{role: column}`` for the roles of :data:`ROLE_CANDIDATES` that have a column in ``adata.obs``.

    Examples
    --------
    >>> adata = mmc.datasets.pbmc68k_reduced()  # doctest: +SKIP
    >>> mmc.pp.detect_caption_keys(adata)  # doctest: +SKIP
    {'cell_type': 'bulk_labels'}

    """
    lower = {c.lower(): c for c in adata.obs.columns}
    found = {}
    for role, candidates in ROLE_CANDIDATES.items():
        for cand in candidates:
            if cand in lower:
                found[role] = lower[cand]
                break
    return found


def _clean(value) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or pd.isna(value):
        return None
    text = " ".join(str(value).split())
    return text or None


def _sentence(row: Mapping[str, str | None], describe) -> str | None:
    cell_type = row.get("cell_type")
    if cell_type is None:
        parts = ["A cell"]
    else:
        parts = [describe(cell_type)]
    if row.get("tissue"):
        parts.append(f"from {row['tissue']}")
    donor = " ".join(v for v in (row.get("development_stage"), row.get("sex"), row.get("organism")) if v)
    if donor:
        parts.append(f"of a {donor} donor")
    disease = row.get("disease")
    if disease and disease.lower() not in _HEALTHY:
        parts.append(f"with {disease}")
    if len(parts) == 1 and cell_type is None:
        return None
    return " ".join(parts) + "."


def caption_texts(
    obs: pd.DataFrame,
    keys: Mapping[str, str],
    *,
    template: str | None = None,
    ontology: bool = True,
    missing: str = "unknown",
) -> pd.Series:
    """Build one caption per row of ``obs`` (the engine behind :func:`captions`).

    Distinct combinations of values are rendered once, so atlases with millions of cells and a few
    thousand distinct metadata combinations are captioned quickly.
    """
    if template is not None:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f]
        missing_cols = [f for f in fields if f not in obs.columns]
        if missing_cols:
            raise MMContextKeyError(f"Caption template names obs columns {missing_cols!r} that do not exist.")
        cols = fields
    else:
        cols = list(dict.fromkeys(keys.values()))
    if not cols:
        return pd.Series([None] * len(obs), index=obs.index, dtype=object)
    for col in cols:
        check_text_column(obs[col], key=col)
    frame = obs[cols].astype(object)
    codes = frame.apply(lambda c: c.map(_clean)).astype(object)
    describe = _ontology_describer() if ontology and template is None else (lambda label: f"A {label} cell")
    uniq = codes.drop_duplicates()
    rendered = {}
    for values in uniq.itertuples(index=False, name=None):
        cleaned = dict(zip(cols, values, strict=True))
        if template is not None:
            if all(v is None for v in cleaned.values()):
                text = None
            else:
                text = template.format(**{k: (v if v is not None else missing) for k, v in cleaned.items()})
        else:
            text = _sentence({role: cleaned[col] for role, col in keys.items()}, describe)
        rendered[values] = text
    out = [rendered[v] for v in codes.itertuples(index=False, name=None)]
    return pd.Series(out, index=obs.index, dtype=object)


def _ontology_describer():
    """Return ``label -> phrase``: the label with its Cell Ontology name and lineage when one matches."""
    try:
        from ..ontology import CellOntology
    except ImportError:  # ontology helper unavailable: plain labels
        return lambda label: f"A {label} cell"
    onto = CellOntology.load()

    def describe(label: str) -> str:
        phrase = onto.describe(label, detail="short")
        if phrase == label:
            return f"A {label} cell"
        # the lineage word lets broad queries ("myeloid cells") find types whose CL names lack it
        lineage = onto.lineage(label)
        return f"A {phrase}, of the {lineage} lineage" if lineage else f"A {phrase}"

    return describe


@doc_params("overwrite", "copy", "returns_copy")
def captions(
    adata: AnnData,
    *,
    keys: Mapping[str, str] | None = None,
    template: str | None = None,
    ontology: bool = True,
    missing: str = "unknown",
    key_added: str = _keys.CAPTION,
    overwrite: bool = False,
    copy: bool = False,
) -> AnnData | None:
    """Write a human-readable caption per cell, built from its ``obs`` metadata.

    By default the caption is a sentence over whichever of these roles exist in ``obs``: cell type,
    tissue, donor development stage / sex / organism, and disease (``"normal"`` is left out), e.g.
    ``"A CD14+ Monocyte cell, a CD14-positive monocyte (a kind of monocyte), from blood."``. Missing
    values drop their clause. With ``ontology=True`` the cell type is enriched with its Cell Ontology
    name and ancestors (offline), so queries in other words find it.

    Parameters
    ----------
    adata
        Annotated data matrix.
    keys
        Mapping of role (``"cell_type"``, ``"tissue"``, ``"disease"``, ``"development_stage"``, ``"sex"``,
        ``"organism"``) to ``obs`` column. Default: detected by column name (:func:`detect_caption_keys`).
        A list of columns is read as ``{"cell_type": first, ...}`` in that role order.
    template
        A format string over ``obs`` column names instead of the default sentence, e.g.
        ``"{bulk_labels} from human blood"``; missing values become ``missing``.
    ontology
        Enrich cell type names with Cell Ontology names and ancestors.
    missing
        Text for a missing value in a custom ``template``.
    key_added
        ``obs`` column to write.
    overwrite
        {overwrite}
    copy
        {copy}

    Returns
    -------
    {returns_copy}

    ``adata.obs[key_added]``
        Caption per cell (str); cells with no usable metadata get a missing value.
    ``adata.uns['mmcontext']['captions']``
        The roles, columns and template used.

    Examples
    --------
    >>> adata = sc.datasets.pbmc68k_reduced()  # doctest: +SKIP
    >>> mmc.pp.captions(adata, keys={"cell_type": "bulk_labels"})  # doctest: +SKIP

    """
    check_adata(adata)
    check_writable(adata, copy=copy)
    check_key_added(key_added)
    check_outputs(adata, "captions", [(key_added, "obs")], overwrite=overwrite)
    keys = resolve_caption_keys(adata, keys, template=template)
    texts = caption_texts(adata.obs, keys, template=template, ontology=ontology, missing=missing)
    if texts.isna().all():
        raise ValueError(
            f"Every caption is empty: the columns {list(keys.values())!r} hold no values. "
            "Pass `keys=` naming obs columns with metadata."
        )
    adata = adata.copy() if copy else adata
    adata.obs[key_added] = texts.values
    record(
        adata,
        "captions",
        {"keys": dict(keys), "template": template, "ontology": ontology, "key_added": key_added},
        key=key_added,
        outputs=("captions", [(key_added, "obs")]),
    )
    log_added((key_added, "obs"))
    return adata if copy else None


def resolve_caption_keys(adata: AnnData, keys, *, template: str | None = None) -> dict[str, str]:
    """Check user ``keys`` against ``obs`` (or detect them) and return ``{role: column}``."""
    if template is not None:
        return {}
    if keys is None:
        keys = detect_caption_keys(adata)
        if not keys:
            raise ValueError(
                "No caption columns found in adata.obs (looked for cell type, tissue, disease, ... columns such as "
                f"{list(_keys.CELL_TYPE_CANDIDATES[:4])}). Pass `caption_keys={{'cell_type': '<column>'}}`."
            )
    elif isinstance(keys, str):
        keys = {"cell_type": keys}
    elif not isinstance(keys, Mapping):
        keys = dict(zip(ROLE_CANDIDATES, list(keys), strict=False))
    unknown = set(keys) - set(ROLE_CANDIDATES)
    if unknown:
        raise ValueError(f"Unknown caption roles {sorted(unknown)!r}; use {list(ROLE_CANDIDATES)!r}.")
    for col in keys.values():
        col_values = get_obs_column(adata, col)
        if col_values.isna().all():
            raise ValueError(f"adata.obs[{col!r}] has only missing values; it cannot caption cells.")
    return dict(keys)


def caption_column(adata: AnnData, caption_key: str | None = None) -> str:
    """The ``obs`` column of captions: ``caption_key``, else the one :func:`prepare` / :func:`captions` wrote."""
    if caption_key is None:
        caption_key = find_record(adata, "prepare").get("caption_key", _keys.CAPTION)
        if caption_key not in adata.obs:
            raise MMContextKeyError(
                f"adata.obs[{caption_key!r}] not found; run `mmc.pp.prepare(adata)` or `mmc.pp.captions(adata)` "
                "first, or pass `caption_key=`."
            )
    check_text_column(get_obs_column(adata, caption_key), key=caption_key)
    return caption_key


def cell_type_column(adata: AnnData, caption_key: str | None = None, *, label_key: str | None = None) -> str | None:
    """The ``obs`` column of cell type labels (behind the captions in ``caption_key``): the one place that decides.

    In this order:

    1. ``label_key``, when given (it must be a column of ``adata.obs``);
    2. the column :func:`prepare` or :func:`captions` recorded for the role ``"cell_type"`` when it wrote the
       captions ``caption_key`` (any captions when ``caption_key`` is ``None``), if it is still in ``adata.obs``;
    3. the first of :data:`mmcontext._keys.CELL_TYPE_CANDIDATES` in ``adata.obs`` (case-insensitive, as
       :func:`detect_caption_keys` finds it);
    4. ``None``: the caller decides (``build_dataset`` uses the captions as their own labels; ``text_pairs=
       'ontology'`` raises).
    """
    if label_key is not None:
        get_obs_column(adata, label_key)
        return label_key
    prep = find_record(adata, "prepare")
    caps = find_record(adata, "captions", caption_key) if caption_key is not None else find_record(adata, "captions")
    recorded = [(prep.get("caption_key"), prep.get("caption_keys")), (caps.get("key_added"), caps.get("keys"))]
    for written, keys in recorded:
        if written is None or caption_key not in (None, written) or not isinstance(keys, Mapping):
            continue
        column = keys.get("cell_type")
        if column and str(column) in adata.obs:
            return str(column)
    return detect_caption_keys(adata).get("cell_type")
