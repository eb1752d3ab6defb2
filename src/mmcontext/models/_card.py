"""The mmcontext section of a saved model's README.md: data, captions, input space, loss, metrics."""

from __future__ import annotations

from typing import Any

#: Heading that marks the section (a card that has it is not extended twice).
HEADING = "## mmcontext: cells and captions"


def card_section(info: dict[str, Any]) -> str:
    """Markdown for ``info`` (from :func:`mmcontext.tl._card.card_info`, with metrics the user may add)."""
    lines = [HEADING, ""]
    lines.append(f"- **Data**: {info.get('data', 'unknown')}")
    lines.append(f"- **Captions**: {info.get('captions', 'unknown')}")
    for ex in info.get("caption_examples", []):
        lines.append(f'  - e.g. "{ex}"')
    if info.get("label_columns"):
        lines.append("- **Label columns**: " + ", ".join(f"obs[{c!r}]" for c in info["label_columns"]))
    lines.append(
        f"- **Input space**: {info.get('input_space', 'unknown')}; project new data with "
        "`mmc.pp.prepare(adata, reference=model)`"
    )
    if info.get("encoding"):
        lines.append(f"- **How cells are encoded**: {info['encoding']}")
    lines.append(f"- **Loss**: {info.get('loss', 'unknown')}")
    if info.get("training"):
        lines.append("- **Training**: " + ", ".join(f"{k}={v}" for k, v in info["training"].items()))
    metrics = info.get("metrics") or {}
    lines.append("- **Metrics**: " + (", ".join(f"{k}={float(v):.4g}" for k, v in metrics.items()) or "none recorded"))
    lines += [
        "",
        "Install mmcontext to use this model: `pip install mmcontext` (its omics module is part of the package).",
        "Load with `mmc.models.load(path)` or `SentenceTransformer(path, trust_remote_code=True)`.",
        "",
    ]
    return "\n".join(lines)
