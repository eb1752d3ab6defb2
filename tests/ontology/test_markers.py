"""The shipped marker table: ids and labels right, inherited down the ontology, CD antigens, user extensions."""

from __future__ import annotations

import csv
from importlib import resources

import pytest

from mmcontext.ontology import CellOntology, MarkerTable, cd_genes, name_marker_genes


@pytest.fixture(scope="module")
def table() -> MarkerTable:
    return MarkerTable.load()


def _rows():
    with resources.files("mmcontext.ontology").joinpath("data", "markers.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_table_covers_broad_lineages_with_valid_terms():
    cl = CellOntology.load()
    rows = _rows()
    assert len(rows) >= 250
    assert len({r["cl_id"] for r in rows}) == len(rows)
    for r in rows:
        assert cl.term(r["cl_id"]).name == r["cl_label"]  # id and label agree with the shipped CL release
        assert r["genes"].split() and r["source"]
        assert all(g == g.upper() or "-" in g for g in r["genes"].split()), r  # human symbols
    # common types of every major compartment are there
    roots = {
        "CL:0000084": 10,  # T cell
        "CL:0000236": 3,  # B cell
        "CL:0000576": 3,  # monocyte
        "CL:0000066": 20,  # epithelial cell
        "CL:0000115": 5,  # endothelial cell
        "CL:0000540": 10,  # neuron
        "CL:0000057": 2,  # fibroblast
    }
    ids = {r["cl_id"] for r in rows}
    for root, n in roots.items():
        below = set(cl.descendants(root)) | {root}
        assert len(ids & below) >= n, (root, len(ids & below))


def test_lookup_by_name_synonym_and_id(table):
    nk = table.lookup("natural killer cells")
    assert nk.term_id == "CL:0000623" and not nk.inherited
    assert {"GNLY", "NKG7", "NCAM1", "KLRD1"} <= set(nk.genes)
    assert table.lookup("CL:0000623").genes == table.lookup("NK cell").genes
    assert table.lookup("no such cell type at all") is None


def test_a_term_without_markers_borrows_its_nearest_ancestors():
    cl = CellOntology.load()
    table = MarkerTable.load()
    ms = table.lookup("B cell, CD19-positive")
    assert ms.term_id == "CL:0001201" and "CL:0001201" not in table.curated
    assert ms.inherited and ms.source_name == "B cell"
    assert ms.source_id in cl.ancestors(ms.term_id)
    assert set(table.curated["CL:0000236"][0]) <= set(ms.genes)
    assert "CD19" in ms.name_genes


def test_cd_antigens_map_to_gene_symbols():
    assert cd_genes("CD56") == ("NCAM1",)
    assert cd_genes("cd25") == ("IL2RA",)
    assert cd_genes("CD8") == ("CD8A", "CD8B")
    assert cd_genes("CD3")[0] == "CD3E"
    assert cd_genes("CD999") == ()
    # only positive markers count: "-negative" and "-dim" are no evidence of expression
    genes = name_marker_genes("CD4-positive, CD25-positive, alpha-beta regulatory T cell")
    assert genes == ("CD4", "IL2RA")
    assert name_marker_genes("CD16-positive, CD56-dim natural killer cell, human") == ("FCGR3A", "FCGR3B")
    assert name_marker_genes("CD14+ Monocyte") == ("CD14",)
    assert "NCAM1" in name_marker_genes("CD56bright NK")
    assert name_marker_genes("CD34-positive, CD38-negative hematopoietic stem cell") == ("CD34",)


def test_user_markers_extend_and_override(tmp_path):
    table = MarkerTable.load({"natural killer cell": ["MYGENE1"], "my odd cells": "GENEA, GENEB"})
    assert table.lookup("NK cells").genes[0] == "MYGENE1"
    assert table.lookup("NK cells").source == "user"
    assert table.lookup("my odd cells").genes == ("GENEA", "GENEB")
    # a descendant inherits the user's entry
    mature = table.lookup("mature natural killer cell")
    assert mature.inherited and mature.genes == ("MYGENE1",)
    path = tmp_path / "m.csv"
    path.write_text("cl_id,genes\nCL:0000236,GENEX GENEY\n")
    from_csv = MarkerTable.load(str(path))
    assert from_csv.lookup("B cells").genes[:2] == ("GENEX", "GENEY")
    assert from_csv.lookup("naive B cell").source != "user"  # has its own curated markers


def test_bad_user_markers_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such CSV"):
        MarkerTable.load(str(tmp_path / "missing.csv"))
    bad = tmp_path / "bad.csv"
    bad.write_text("name,markers\nx,y\n")
    with pytest.raises(ValueError, match="'genes' column"):
        MarkerTable.load(str(bad))
    with pytest.raises(ValueError, match="empty"):
        MarkerTable.load({"B cell": []})
    with pytest.raises(TypeError, match="dict"):
        MarkerTable.load(42)
