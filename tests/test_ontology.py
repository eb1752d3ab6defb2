from __future__ import annotations

import subprocess
import sys
import time

import pytest

from mmcontext.ontology import GENERIC_ANCESTORS, CellOntology, OntologyTerm


@pytest.fixture(scope="module")
def cl() -> CellOntology:
    return CellOntology.load()


# the ``bulk_labels`` of scanpy.datasets.pbmc68k_reduced(), with the CL id we expect and
# words the matched name must contain
PBMC68K = [
    ("CD14+ Monocyte", "CL:0001054", ["CD14-positive", "monocyte"]),
    ("CD19+ B", None, ["B cell"]),
    ("CD34+", None, ["CD34-positive"]),
    ("CD4+/CD25 T Reg", "CL:0000792", ["CD4-positive", "CD25-positive", "regulatory T"]),
    ("CD4+/CD45RA+/CD25- Naive T", "CL:0000895", ["naive", "CD4-positive", "T cell"]),
    ("CD4+/CD45RO+ Memory", None, ["CD4-positive", "memory T cell"]),
    ("CD56+ NK", None, ["natural killer"]),
    ("CD8+ Cytotoxic T", "CL:0000794", ["CD8-positive", "cytotoxic T"]),
    ("CD8+/CD45RA+ Naive Cytotoxic", "CL:0000900", ["naive", "CD8-positive"]),
    ("Dendritic", "CL:0000451", ["dendritic"]),
]


@pytest.mark.parametrize(("label", "term_id", "words"), PBMC68K)
def test_match_pbmc68k_labels(cl, label, term_id, words):
    term = cl.match(label)
    assert term is not None, label
    if term_id is not None:
        assert term.id == term_id, (label, term)
    for word in words:
        assert word in term.name, (label, term.name)
    assert 0.5 <= term.score <= 1.0


def test_match_cd34_is_a_hematopoietic_progenitor(cl):
    term = cl.match("CD34+")
    assert term.id in cl.descendants("CL:0008001")  # hematopoietic precursor cell
    assert "hematopoietic precursor cell" in term.ancestors


def test_match_cd19_b_is_a_b_cell(cl):
    term = cl.match("CD19+ B")
    assert term.id == "CL:0000236" or term.id in cl.descendants("CL:0000236")


@pytest.mark.parametrize(
    ("label", "term_id"),
    [
        ("natural killer cell", "CL:0000623"),
        ("Natural Killer Cells", "CL:0000623"),
        ("NK cell", "CL:0000623"),
        ("NK", "CL:0000623"),
        ("monocytes", "CL:0000576"),
        ("Mono", "CL:0000576"),
        ("B lymphocyte", "CL:0000236"),
        ("B cells", "CL:0000236"),
        ("T cells", "CL:0000084"),
        ("Treg", "CL:0000815"),
        ("Tregs", "CL:0000815"),
        ("T reg", "CL:0000815"),
        ("DC", "CL:0000451"),
        ("dendritic cells", "CL:0000451"),
        ("pDC", "CL:0000784"),
        ("pDCs", "CL:0000784"),
        ("HSC", "CL:0000037"),
        ("Mk", "CL:0000556"),
        ("Megakaryocytes", "CL:0000556"),
        ("RBC", "CL:0000232"),
        ("red blood cells", "CL:0000232"),
        ("CD14 Mono", "CL:0001054"),
        ("CD4 T cells", "CL:0000624"),
        ("CD8 T cells", "CL:0000625"),
        ("γδ T cells", "CL:0000798"),
        ("naïve CD4+ T cells", "CL:0000895"),
        ("Th17", "CL:0000899"),
    ],
)
def test_match_names_synonyms_plurals_abbreviations(cl, label, term_id):
    term = cl.match(label)
    assert term is not None, label
    assert term.id == term_id, (label, term.id, term.name)


def test_match_exact_name_scores_one(cl):
    assert cl.match("natural killer cell").score == pytest.approx(1.0)
    assert cl.match("CD14-positive monocyte").score == pytest.approx(1.0)


@pytest.mark.parametrize("label", ["CL:0000236", "cl:0000236", "CL_0000236", "B-ish cells (CL:0000236)"])
def test_match_ids(cl, label):
    term = cl.match(label)
    assert term.id == "CL:0000236"
    assert term.name == "B cell"
    assert term.score == 1.0


def test_match_deprecated_id_follows_replacement(cl):
    # CL:0000003 "obsolete native cell" is replaced by CL:0000000 "cell"
    assert cl.match("CL:0000003").id == "CL:0000000"


@pytest.mark.parametrize("label", ["foo bar", "louvain 3", "cluster 5", "0", "unknown", "", "   ", "xyzzy"])
def test_match_nonsense_returns_none(cl, label):
    assert cl.match(label) is None


def test_match_min_score(cl):
    term = cl.match("CD56+ NK")
    assert cl.match("CD56+ NK", min_score=min(1.0, term.score + 1e-6)) is None
    assert cl.match("CD56+ NK", min_score=0.0) == term


def test_term_lookup(cl):
    nk = cl.term("CL:0000623")
    assert isinstance(nk, OntologyTerm)
    assert nk.id == "CL:0000623"
    assert nk.name == "natural killer cell"
    assert "NK cell" in nk.synonyms
    assert nk.definition is not None
    assert nk.definition.startswith("A lymphocyte")
    assert nk.score == 1.0
    assert cl.term("CL_0000623") == nk
    assert "CL:0000623" in cl
    assert "CL:9999999" not in cl


def test_term_ancestors_nearest_first_without_generic(cl):
    nk = cl.term("CL:0000623")
    assert "lymphocyte" in nk.ancestors
    assert "innate lymphoid cell" in nk.ancestors
    assert nk.ancestors.index("innate lymphoid cell") < nk.ancestors.index("lymphocyte")
    assert nk.ancestors.index("lymphocyte") < nk.ancestors.index("leukocyte")
    assert not set(nk.ancestors) & GENERIC_ANCESTORS
    assert "cell" not in nk.ancestors
    assert "eukaryotic cell" not in nk.ancestors
    assert cl.term("CL:0000000").ancestors == ()


def test_term_is_frozen(cl):
    with pytest.raises(AttributeError):
        cl.term("CL:0000623").name = "x"


@pytest.mark.parametrize("bad", ["CL:9999999", "natural killer cell", "UBERON:0000178", ""])
def test_term_unknown_id_raises_keyerror(cl, bad):
    with pytest.raises(KeyError, match="CL:0000623"):
        cl.term(bad)


def test_descendants(cl):
    below_t = cl.descendants("CL:0000084")
    assert "CL:0000625" in below_t  # CD8-positive, alpha-beta T cell
    assert "CL:0000624" in below_t  # CD4-positive, alpha-beta T cell
    assert "CL:0000815" in below_t  # regulatory T cell
    assert "CL:0000084" not in below_t
    assert "CL:0000236" not in below_t  # B cell
    assert len(below_t) == len(set(below_t)) > 50
    # nearest first: direct children come before grandchildren
    assert below_t.index("CL:0000789") < below_t.index("CL:0000625")
    assert cl.descendants("CL:0000623") and all(d in cl.descendants("CL:0000542") for d in cl.descendants("CL:0000623"))
    with pytest.raises(KeyError):
        cl.descendants("CL:9999999")


def test_search(cl):
    hits = cl.search("monocyte", n=5)
    assert len(hits) == 5
    assert hits[0].id == "CL:0000576"
    assert all("monocyte" in h.name.lower() or any("monocyte" in s.lower() for s in h.synonyms) for h in hits[:3])
    scores = [h.score for h in hits]
    assert all(0 <= s <= 1 for s in scores)
    assert len({h.id for h in hits}) == 5
    assert cl.search("foo bar") == []
    assert cl.search("B cell", n=0) == []
    assert cl.search("CD14+ Monocyte", n=1)[0].id == cl.match("CD14+ Monocyte").id


def test_describe(cl):
    text = cl.describe("CD56+ NK")
    term = cl.match("CD56+ NK")
    assert text.startswith("CD56+ NK, a ")
    assert term.name in text
    assert "natural killer cell" in text
    assert len(text.split()) <= 60
    short = cl.describe("CD56+ NK", detail="short")
    assert text.startswith(short)
    assert len(short) < len(text)
    assert "a kind of" in short
    assert cl.describe("CD56+ NK", detail="name") == f"CD56+ NK, a {term.name}"


def test_describe_nk_reads_well(cl):
    assert cl.describe("NK", detail="short") == (
        "NK, a natural killer cell (NK cell), a kind of innate lymphoid cell and lymphocyte"
    )
    full = cl.describe("NK")
    assert full.startswith("NK, a natural killer cell (NK cell)")
    assert "A lymphocyte that can spontaneously kill" in full


@pytest.mark.parametrize("label", [lab for lab, _, _ in PBMC68K])
def test_describe_pbmc68k(cl, label):
    text = cl.describe(label)
    assert label in text
    assert cl.match(label).name in text
    assert len(text.split()) <= 60


def test_describe_unmatched_and_bad_detail(cl):
    assert cl.describe("louvain 3") == "louvain 3"
    assert cl.describe("monocyte", detail="short").startswith("monocyte, a kind of ")
    with pytest.raises(ValueError, match="detail"):
        cl.describe("NK", detail="everything")


def test_text_pairs(cl):
    pairs = cl.text_pairs(["CL:0000623", "CL:0000236", "CL:0000623"])
    assert pairs
    assert all(isinstance(a, str) and isinstance(b, str) and a and b and a != b for a, b in pairs)
    assert ("NK cell", "natural killer cell") in pairs
    assert ("B lymphocyte", "B cell") in pairs
    assert (cl.term("CL:0000623").definition, "natural killer cell") in pairs
    assert ("natural killer cell", "lymphocyte") in pairs
    assert ("B cell", "lymphocyte") in pairs
    assert len(pairs) == len(set(pairs))  # the duplicated id is used once
    assert cl.text_pairs([]) == []
    with pytest.raises(KeyError):
        cl.text_pairs(["CL:9999999"])


def test_load_is_cached_and_fast():
    assert CellOntology.load() is CellOntology.load()
    code = (
        "import time; t = time.perf_counter(); from mmcontext.ontology import CellOntology; "
        "CellOntology.load(); print(time.perf_counter() - t)"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout.strip()) < 3.0
    assert time.perf_counter() - start < 10.0


def test_load_does_not_import_torch():
    # whatever the package __init__ imports, this module and its use must add neither
    code = (
        "import sys, mmcontext; heavy = ('torch', 'sentence_transformers'); "
        "before = [m in sys.modules for m in heavy]; "
        "from mmcontext.ontology import CellOntology; CellOntology.load().describe('NK'); "
        "print([m in sys.modules for m in heavy] == before)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_version_and_size(cl):
    assert cl.version.startswith("v20")
    assert len(cl) > 3000
    assert "CellOntology" in repr(cl)
