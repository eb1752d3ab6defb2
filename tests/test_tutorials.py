"""Every tutorial runs top to bottom against the installed package (the docs build executes them too)."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

TUTORIALS = sorted((Path(__file__).parents[1] / "tutorials").glob("*.md"))
CELL = re.compile(r"```\{code-cell\}[^\n]*\n(.*?)```", re.S)


def test_tutorials_are_found():
    assert {p.name for p in TUTORIALS} >= {"quickstart.md", "new_data.md"}


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs(path, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    cells = CELL.findall(path.read_text())
    assert cells, f"{path.name} has no code cells"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, code in enumerate(cells):
        try:
            exec(compile(code, f"{path.name}[cell {i}]", "exec"), namespace)
        except Exception as err:  # name the failing cell
            raise AssertionError(f"{path.name}, code cell {i} failed: {err!r}") from err
        plt.close("all")
