"""Draw the concepts page's pipeline diagram with matplotlib when the build starts.

``draw(path)`` writes an SVG (text kept as text); the Sphinx hook writes ``docs/_generated/pipeline.svg``, which
``concepts.md`` shows with a ``{figure}`` directive. Run ``python docs/_ext/pipeline_figure.py out.svg`` to look at
it alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

# (x, y, w, h, title, body, colour): the boxes, in axes units of a 16 x 8.2 canvas
_DATA, _TEXT, _CELL, _JOINT, _OUT = "#e8eef7", "#fdf0e0", "#e6f4ea", "#efe6f7", "#f4f4f4"
BOXES = {
    "init": (
        0.2,
        5.6,
        3.4,
        1.9,
        "initial embedding",
        "adata.obsm: gene panel,\nPCA, X_scvi, ...\nmmc.pp.prepare",
        _DATA,
    ),
    "obs": (
        0.2,
        2.6,
        3.4,
        1.9,
        "obs metadata",
        "cell type, tissue, disease\n(+ Cell Ontology)\nmmc.pp.captions",
        _DATA,
    ),
    "data": (
        4.4,
        3.9,
        3.3,
        2.4,
        "dataset of references",
        '("<store>:<cell>",\n caption, negatives)\nembedding stores\nmmc.pp.build_dataset',
        _DATA,
    ),
    "omics": (
        8.5,
        5.4,
        3.2,
        1.9,
        "omics route",
        "OmicsEncoder: standardise,\nMLP adapter (trained)",
        _CELL,
    ),
    "text": (
        8.5,
        2.7,
        3.2,
        1.9,
        "text route",
        "MiniLM Transformer + Pooling\nfrozen (default) or top\nlayers trainable",
        _TEXT,
    ),
    "joint": (
        12.4,
        3.9,
        3.4,
        2.4,
        "joint space",
        "Normalize: unit vectors\ncells and texts compared\nby cosine",
        _JOINT,
    ),
    "embed": (12.4, 7.0, 3.4, 1.0, "tl.embed", "obsm['X_mmc']", _OUT),
    "query": (
        12.4,
        1.9,
        3.4,
        1.3,
        "tl.query / tl.annotate",
        "obs['mmc_<query>'],\nobs['mmc_label'] + probability",
        _OUT,
    ),
    "search": (12.4, 0.2, 3.4, 1.2, "tl.search", "top-k cells for a text or a cell", _OUT),
}
ARROWS = [
    ("init", "data", ""),
    ("obs", "data", "captions"),
    ("data", "omics", "cell refs"),
    ("data", "text", "captions"),
    ("omics", "joint", ""),
    ("text", "joint", ""),
    ("joint", "embed", ""),
    ("joint", "query", ""),
    ("joint", "search", "bar,fraction=-0.12"),  # around the query box, on the right
]


def _anchor(box: tuple, towards: tuple) -> tuple[float, float]:
    """Midpoint of the side of ``box`` that faces ``towards``."""
    x, y, w, h = box[:4]
    cx, cy = x + w / 2, y + h / 2
    tx, ty = towards[0] + towards[2] / 2, towards[1] + towards[3] / 2
    if abs(tx - cx) * h >= abs(ty - cy) * w:  # leaves through the left or right side
        return (x + w, cy) if tx > cx else (x, cy)
    return (cx, y + h) if ty > cy else (cx, y)


def draw(path: str | Path) -> Path:
    """Draw the pipeline diagram into ``path`` (format from the suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    plt.rcParams["svg.fonttype"] = "none"
    fig, ax = plt.subplots(figsize=(16.6, 8.2))
    ax.set_xlim(0, 16.6)
    ax.set_ylim(0, 8.2)
    ax.axis("off")
    for x, y, w, h, title, body, colour in BOXES.values():
        ax.add_patch(
            FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.15", fc=colour, ec="#555555", lw=1.2)
        )
        ax.text(x + w / 2, y + h - 0.3, title, ha="center", va="top", fontsize=13, weight="bold")
        ax.text(x + w / 2, y + h - 0.75, body, ha="center", va="top", fontsize=10.5, linespacing=1.35)
    # the encoder: one SentenceTransformer holding both routes
    ax.add_patch(
        FancyBboxPatch(
            (8.3, 2.5), 3.6, 5.0, boxstyle="round,pad=0.02,rounding_size=0.2", fc="none", ec="#888888", ls="--"
        )
    )
    ax.text(
        10.1,
        7.75,
        "MMContextEncoder (a SentenceTransformer)\nRouter: omics route | text route",
        ha="center",
        va="center",
        fontsize=10.5,
        style="italic",
    )
    ax.text(
        10.1,
        1.9,
        "mmc.tl.train: contrastive loss pulls\neach cell to its caption",
        ha="center",
        va="center",
        fontsize=10.5,
        color="#444444",
    )
    for a, b, label in ARROWS:
        if label.startswith("bar"):  # leave and enter through the right sides
            (xa, ya, wa, ha), (xb, yb, wb, hb) = BOXES[a][:4], BOXES[b][:4]
            start, end, style = (xa + wa, ya + ha / 2), (xb + wb, yb + hb / 2), label
            label = ""
        else:
            start, end, style = _anchor(BOXES[a], BOXES[b]), _anchor(BOXES[b], BOXES[a]), "arc3"
        arrow = FancyArrowPatch(
            start, end, arrowstyle="-|>", mutation_scale=16, lw=1.4, color="#333333", connectionstyle=style
        )
        ax.add_patch(arrow)
        if label:
            ax.text(
                (start[0] + end[0]) / 2,
                (start[1] + end[1]) / 2 + 0.15,
                label,
                ha="center",
                fontsize=9.5,
                color="#333333",
            )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def _on_builder_inited(app) -> None:
    draw(Path(app.srcdir) / "_generated" / "pipeline.svg")


def setup(app):
    app.connect("builder-inited", _on_builder_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    print(draw(sys.argv[1] if len(sys.argv) > 1 else "pipeline.svg"))
