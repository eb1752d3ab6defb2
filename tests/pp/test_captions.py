from __future__ import annotations

import numpy as np
import pytest
from conftest import make_adata

import mmcontext as mmc


def test_detects_roles_and_builds_sentences(tiny):
    assert mmc.pp.detect_caption_keys(tiny) == {"cell_type": "cell_type", "tissue": "tissue"}
    mmc.pp.captions(tiny, ontology=False)
    caps = tiny.obs["mmc_caption"]
    row = tiny.obs.iloc[0]
    assert caps.iloc[0] == f"A {row['cell_type']} cell from {row['tissue']}."
    assert tiny.uns["mmcontext"]["captions"]["keys"]["tissue"] == "tissue"


def test_missing_values_drop_their_clause(tiny):
    tiny.obs["tissue"] = tiny.obs["tissue"].astype(object)
    tiny.obs.iloc[0, tiny.obs.columns.get_loc("tissue")] = np.nan
    mmc.pp.captions(tiny, ontology=False)
    assert tiny.obs["mmc_caption"].iloc[0] == f"A {tiny.obs['cell_type'].iloc[0]} cell."


def test_healthy_disease_is_left_out_and_donor_clause(tiny):
    tiny.obs["disease"] = ["normal"] * 20 + ["COVID-19"] * 20
    tiny.obs["sex"] = "female"
    tiny.obs["development_stage"] = "adult"
    mmc.pp.captions(tiny, ontology=False)
    assert "with" not in tiny.obs["mmc_caption"].iloc[0]
    assert tiny.obs["mmc_caption"].iloc[-1].endswith("of a adult female donor with COVID-19.")


def test_template_and_missing_placeholder(tiny):
    tiny.obs["tissue"] = tiny.obs["tissue"].astype(object)
    tiny.obs.iloc[1, tiny.obs.columns.get_loc("tissue")] = None
    mmc.pp.captions(tiny, template="{cell_type} in {tissue}", key_added="cap")
    assert tiny.obs["cap"].iloc[1] == f"{tiny.obs['cell_type'].iloc[1]} in unknown"
    with pytest.raises(KeyError, match="organ"):
        mmc.pp.captions(tiny, template="{organ}")


def test_ontology_enrichment_adds_cell_ontology_names(pbmc):
    mmc.pp.captions(pbmc, keys={"cell_type": "bulk_labels"})
    caps = dict(zip(pbmc.obs["bulk_labels"], pbmc.obs["mmc_caption"], strict=True))
    assert "monocyte" in caps["CD14+ Monocyte"].lower()
    assert "B cell" in caps["CD19+ B"]
    assert "regulatory T cell" in caps["CD4+/CD25 T Reg"]
    assert len(set(caps.values())) == 10


def test_no_metadata_is_a_clear_error(tiny):
    del tiny.obs["cell_type"], tiny.obs["tissue"]
    with pytest.raises(ValueError, match="No caption columns"):
        mmc.pp.captions(tiny)


def test_cell_type_column_is_decided_in_one_order():
    """label_key, then the column recorded for these captions, then the first candidate column, then None."""
    from mmcontext._validation import MMContextKeyError
    from mmcontext.pp._captions import cell_type_column
    from mmcontext.pp._dataset import _label_key

    adata = make_adata()
    adata.obs["annot"] = adata.obs["cell_type"].astype(str)
    assert cell_type_column(adata, label_key="tissue") == "tissue"
    with pytest.raises(MMContextKeyError, match="tisue"):
        cell_type_column(adata, label_key="tisue")
    mmc.pp.prepare(adata, caption_keys={"cell_type": "annot"}, ontology=False)
    assert cell_type_column(adata) == cell_type_column(adata, "mmc_caption") == "annot"  # recorded by prepare
    assert cell_type_column(adata, "other_captions") == "cell_type"  # not these captions: the candidate column
    mmc.pp.captions(adata, keys={"cell_type": "tissue"}, key_added="by_tissue", ontology=False)
    assert cell_type_column(adata, "by_tissue") == "tissue"  # recorded by captions for its key_added
    bare = make_adata()
    bare.obs = bare.obs.rename(columns={"cell_type": "Cell_Type"})
    assert cell_type_column(bare) == "Cell_Type"  # case-insensitive, as detect_caption_keys
    del bare.obs["Cell_Type"]
    assert cell_type_column(bare, "caps") is None
    assert _label_key(bare, None, "caps") == "caps"  # build_dataset: the captions are their own labels
    assert _label_key(adata, None, "mmc_caption") == "annot"
